"""Ledger endpoints: the signed checkpoint, the key, entries, inclusion and consistency proofs.

Everything here is what an auditor needs to check the exchange from outside: fetch the latest
checkpoint (a C2SP tlog-checkpoint signed note, ``text/plain``), the exchange's public key,
the entries themselves, and RFC 9162 §2.1.3 / §2.1.4 proofs against any past tree size.
``gsomia ledger verify --url`` uses exactly these. Errors are RFC 9457 problems
(:mod:`gsomia.api.problems`): an index or size beyond the ledger is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from gsomia.api.deps import Caller, LedgerScope, app_of, ledger_reader
from gsomia.api.schemas import (
    AUTHENTICATED,
    ConsistencyProofOut,
    CosignatureOut,
    InclusionProofOut,
    LedgerEntryOut,
    LedgerKeyOut,
    LedgerPageOut,
    ProvedEntriesOut,
    problems,
)
from gsomia.services.ledger.service import MAX_PROVED, PAGE_LIMIT

# Every ledger endpoint's dependencies, in one place: a bearer token of a party, an operator or
# an auditor (the ledger holds digests and decisions, never payloads).
DEPENDENCIES: list[Any] = [Depends(ledger_reader)]


router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"], dependencies=DEPENDENCIES)

Index = Annotated[int, Query(ge=0, description="Zero-based entry (leaf) index.")]
Size = Annotated[int | None, Query(ge=0, description="Tree size; default: the current size.")]


@router.get(
    "/checkpoint",
    summary="The latest signed checkpoint (C2SP tlog-checkpoint signed note)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **problems(*AUTHENTICATED)},
)
def checkpoint(request: Request) -> PlainTextResponse:
    """The signed note: origin, tree size, base64 root hash, a blank line, the signature line."""
    note = app_of(request).ledger.checkpoint()
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


@router.get(
    "/checkpoint/cosigned",
    summary="A checkpoint with its witnesses' cosignatures (C2SP tlog-cosignature)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **problems(*AUTHENTICATED, 404)},
)
def cosigned_checkpoint(request: Request, size: Size = None) -> PlainTextResponse:
    """The signed note of ``size`` (default: the largest any witness cosigned): the log's
    signature line, then one ``cosignature/v1`` line per witness. 404 until a witness cosigns."""
    note = app_of(request).ledger.cosigned_checkpoint(size)
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


class CosignatureIn(BaseModel):
    """A witness's cosignature of the checkpoint of ``size``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    # A JSON number in a request body is at most 2**53 - 1 (I-JSON, gsomia.api.middleware).
    size: int = Field(ge=0, le=2**53 - 1, description="The tree size of the checkpoint cosigned.")
    cosignature: str = Field(
        max_length=1024, description="The signature line: '— NAME base64(key ID || u64 timestamp || signature)'."
    )


@router.post(
    "/cosignatures",
    summary="Post your witness's cosignature of a checkpoint",
    response_model=CosignatureOut,
    responses=problems(*AUTHENTICATED, 404, 409),
)
def cosign(request: Request, body: CosignatureIn, caller: Caller) -> dict[str, Any]:
    """Recorded only if it verifies, under the caller's party's registered witness key, over this
    log's checkpoint of that size; 422 otherwise (the witness saw another tree). 409: the
    witness key changed meanwhile, or another party's line is kept under that name; 503 (ask
    again): the database went back under the process that checked it."""
    return app_of(request).exchange.witnesses.cosign(caller, body.size, body.cosignature)


@router.get(
    "/key",
    summary="The exchange's checkpoint verification key",
    response_model=LedgerKeyOut,
    responses=problems(*AUTHENTICATED),
)
def key(request: Request) -> dict[str, str]:
    """``{"name", "key_id", "public_key", "algorithm", "vkey"}``; pin it to verify checkpoints."""
    return app_of(request).ledger.public_key()


@router.get(
    "/entries",
    summary="Entries in index order, a page at a time",
    response_model=LedgerPageOut,
    responses=problems(*AUTHENTICATED, 409),
)
def entries(
    request: Request,
    scope: LedgerScope,
    start: Annotated[int, Query(ge=0, description="First index to return.")] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT, description=f"Page size, at most {PAGE_LIMIT}.")] = 100,
) -> dict[str, Any]:
    """``{"start", "limit", "entries": [...], "next"}``; ``next`` is null after the last entry.
    A party sees only the entries about it (indices then skip); auditors and operators all."""
    rows = app_of(request).ledger.entries(start, limit, reader=scope)
    following = rows[-1]["index"] + 1 if len(rows) == limit else None
    return {"start": start, "limit": limit, "entries": rows, "next": following}


@router.get(
    "/entries/{index}",
    summary="One entry, with its leaf hash",
    response_model=LedgerEntryOut,
    responses=problems(*AUTHENTICATED, 404, 409),
)
def entry(request: Request, index: int, scope: LedgerScope) -> dict[str, Any]:
    """``{"index", "entry", "body", "leaf_hash", "recorded_at"}``; another party's entry is a 404."""
    return app_of(request).ledger.entry(index, reader=scope)


@router.get(
    "/proof/inclusion",
    summary="Inclusion proof of an entry (RFC 9162 §2.1.3)",
    response_model=InclusionProofOut,
    responses=problems(*AUTHENTICATED, 404, 409),
)
def inclusion(request: Request, index: Index, scope: LedgerScope, size: Size = None) -> dict[str, Any]:
    """``{"index", "size", "leaf_hash", "proof", "root"}``, plus the signed checkpoint at the
    current size; a party gets proofs of the entries about it only (another's is a 404)."""
    return app_of(request).ledger.inclusion(index, size, reader=scope)


@router.get(
    "/proof/inclusions",
    summary="Several entries, each with its inclusion proof in one tree (RFC 9162 §2.1.3)",
    response_model=ProvedEntriesOut,
    responses=problems(*AUTHENTICATED, 404, 409),
)
def inclusions(
    request: Request,
    scope: LedgerScope,
    index: Annotated[
        list[int],
        Query(
            min_length=1, max_length=MAX_PROVED, description=f"Entry indexes (repeat the parameter), 1 to {MAX_PROVED}."
        ),
    ],
    size: Annotated[
        int | None,
        Query(ge=0, description="The tree size every proof is for (a checkpoint's); default: the current size."),
    ] = None,
    old: Annotated[
        int | None,
        Query(
            ge=0,
            description="Without `size`: a tree size you hold a checkpoint of; the answer adds the consistency "
            "proof from it to the current size.",
        ),
    ] = None,
) -> dict[str, Any]:
    """``{"size", "items": [{"index", "entry", "proof"} | {"index", "error"}], "checkpoint"?,
    "consistency"?}``: what ``/entries/{index}`` and ``/proof/inclusion`` answer, for many
    entries in one request. An entry that is not in the tree or not the caller's to read gets
    ``error`` (the others are still proved); a size beyond the ledger is a 404. With no
    ``size``, the proofs are in the current tree and its signed checkpoint comes with them;
    ``old`` adds what ``/proof/consistency?old=`` answers (docs/protocol.md §5.5)."""
    return app_of(request).ledger.proved_entries(index, size, reader=scope, old=old)


@router.get(
    "/proof/consistency",
    summary="Consistency proof between two tree sizes (RFC 9162 §2.1.4)",
    response_model=ConsistencyProofOut,
    responses=problems(*AUTHENTICATED, 404, 409),
)
def consistency(
    request: Request,
    old: Annotated[int, Query(ge=0, description="The older tree size (e.g. of a checkpoint you kept).")],
    new: Size = None,
) -> dict[str, Any]:
    """``{"old", "new", "proof", "old_root", "new_root"}``, plus the signed checkpoint at the current size."""
    return app_of(request).ledger.consistency(old, new)
