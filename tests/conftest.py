"""Shared fixtures: the wire vectors. The local SQS server and queues come from
our own testing kit (``panoply_server``, ``panoply_queue``), loaded as a pytest plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent / "data"
VECTORS = DATA / "wire-vectors.json"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def vector_credentials(vectors: dict[str, Any]) -> tuple[str, str]:
    first = vectors["credentials"][0]
    return first["apikey"], first["apisecret"]
