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


# The SDK reads its credentials and endpoint from these when not given (issue 20); a
# developer's shell that points at a local server must not redirect the suite's SDKs.
_SDK_ENVIRONMENT = (
    "PANOPLY_APIKEY", "PANOPLY_APISECRET", "PANOPLY_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL", "PANOPLY_ASYNC_NO_ALIAS",
)


@pytest.fixture(autouse=True)
def _no_sdk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in _SDK_ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
