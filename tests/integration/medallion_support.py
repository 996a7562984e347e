"""medallion (the OASIS TAXII 2.1 reference server, memory backend) served on 127.0.0.1 in a
thread, as a reference for envelopes, headers and errors. Its data file is written here: one API
root ``api`` with one collection that may be read and written."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import free_port

USER, PASSWORD = "analyst", "reference password"
COLLECTION = str(uuid.UUID("6f1d7c7e-4f1a-4a8b-9c55-2d2b1e5a9c01"))


@dataclass
class Medallion:
    url: str
    collection: str

    @property
    def taxii(self) -> str:
        return self.url + "/taxii2/"

    @property
    def objects(self) -> str:
        return f"{self.url}/api/collections/{self.collection}/objects/"


def write_config(directory: Path, max_page: int = 100) -> Path:
    """medallion's configuration and data file."""
    data = {
        "/discovery": {
            "title": "medallion reference",
            "description": "reference server",
            "default": "/api/",
            "api_roots": ["/api/"],
        },
        "api": {
            "information": {
                "title": "reference root",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 10 * 1024 * 1024,
            },
            "status": [],
            "collections": [
                {
                    "id": COLLECTION,
                    "title": "reference collection",
                    "description": "read and write",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }
            ],
        },
    }
    data_file = directory / "medallion-data.json"
    data_file.write_text(json.dumps(data), encoding="utf-8")
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(data_file),
        },
        "users": {USER: PASSWORD},
        "taxii": {"max_page_size": max_page},
    }
    path = directory / "medallion.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@contextmanager
def serve_medallion(directory: Path, max_page: int = 100) -> Iterator[Medallion]:
    """Serve medallion (werkzeug, threaded) until the block ends."""
    import medallion
    from werkzeug.serving import make_server

    app = medallion.load_app(str(write_config(directory, max_page)))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Medallion(f"http://127.0.0.1:{port}", COLLECTION)
    finally:
        server.shutdown()
        thread.join(timeout=10)
