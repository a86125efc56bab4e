"""Shared fixtures: the wire vectors and a session-wide local SQS server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from panoply_async.local import LocalSQS

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


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class QueueInfo:
    apikey: str
    apisecret: str
    queue_url: str
    endpoint_url: str


@pytest.fixture(scope="session")
def local_sqs() -> Iterator[LocalSQS]:
    from panoply_async.local import LocalSQS

    with LocalSQS() as server:
        yield server


@pytest.fixture
def queue(local_sqs: LocalSQS) -> QueueInfo:
    """A fresh queue with fresh credentials on the session's local server."""
    from panoply_async.local import make_credentials

    apikey, apisecret = make_credentials("test")
    url = local_sqs.create_queue(apikey, apisecret)
    return QueueInfo(apikey, apisecret, url, local_sqs.endpoint_url)
