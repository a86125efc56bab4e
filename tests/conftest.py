"""Shared fixtures: the wire vectors. The local SQS server and queues come from
our own testing kit (``panoply_server``, ``panoply_queue``), loaded as a pytest plugin."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _vectors_path() -> Path:
    explicit = os.environ.get("PANOPLY_WIRE_VECTORS")
    if explicit:
        return Path(explicit)
    # shared/ sits beside the checkout (DESIGN.md); CI lays a copy there too.
    return ROOT.parent / "shared" / "wire-vectors.json"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    path = _vectors_path()
    if not path.is_file():
        pytest.fail(f"wire vectors not found at {path}; set PANOPLY_WIRE_VECTORS")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def vector_credentials(vectors: dict[str, Any]) -> tuple[str, str]:
    first = vectors["credentials"][0]
    return first["apikey"], first["apisecret"]
