"""The repository carries its own copy of the wire vectors (tests/data/); this
checks that copy against the project's reference file when a checkout happens to
sit beside it, and is skipped everywhere else (a clone anywhere has no such file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import VECTORS

BESIDE_CHECKOUT = Path(__file__).resolve().parents[2]
REFERENCE = BESIDE_CHECKOUT / "shared" / "wire-vectors.json"  # identical-copy check only


def test_vendored_vectors_are_identical_to_the_reference() -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"no reference copy beside this checkout ({REFERENCE} does not exist)")
    assert VECTORS.read_bytes() == REFERENCE.read_bytes(), (
        f"{VECTORS} differs from {REFERENCE}: copy the reference into tests/data/"
    )
