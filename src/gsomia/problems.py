"""RFC 9457 problem documents in an OpenAPI document: the one shape of every error answer, for
the exchange's API and the party node's alike (each with its own texts for the statuses)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemOut(BaseModel):
    """An RFC 9457 problem: every error answer. ``type`` names the cause
    (``urn:gsomia:problem:not-found``…); clients map it, never the status or the text."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="urn:gsomia:problem:<cause>")
    title: str
    status: int
    detail: str


def document_problems(
    spec: dict[str, Any],
    texts: Mapping[int, str],
    implied: Callable[[str, str, dict[str, Any]], tuple[int, ...]],
) -> dict[str, Any]:
    """Make every error response of ``spec`` what the server really sends: a problem document
    (:class:`ProblemOut`) in ``application/problem+json``, whatever the framework's own default
    for request validation errors says. ``implied(path, method, operation)`` names the statuses
    every such operation may answer besides those its route declares (what middleware and
    dependencies answer before the route runs); ``texts`` describes each status."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = ProblemOut.model_json_schema(ref_template="#/components/schemas/{model}")
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in implied(path, method, operation):
                responses.setdefault(str(status), {"description": texts[status]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": ref}}
                    response.setdefault("description", texts.get(int(status), "An error"))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec
