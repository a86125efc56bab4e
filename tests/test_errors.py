"""Connector exceptions and the legacy error normalisation (`wrap_errors`, `set_internal_code`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from panoply_async import _exceptions, errors
from panoply_async.datasource import DataSource
from panoply_async.errors import (
    ERROR_CODES,
    BackgroundTimeoutError,
    DataSourceException,
    MetadataNotSupportedException,
    PanoplyError,
    PanoplyException,
    Phase,
    TokenValidationException,
    WrongTypeOrValueError,
    set_internal_code,
    wrap_errors,
)

SOURCE = {"type": "crm", "id": "src-1", "database": "db-9"}


@set_internal_code(401)
class AuthError(Exception):
    pass


class ChildAuthError(AuthError):
    pass


@set_internal_code(999)
class WeirdCodeError(Exception):
    pass


class Connector(DataSource):
    @wrap_errors(Phase.COLLECT)
    def fetch(self) -> None:
        raise AuthError("token expired")


def test_panoply_exception_is_retryable_unless_told() -> None:
    assert PanoplyException("boom").retryable is True
    exc = PanoplyException("boom", retryable=False)
    assert exc.retryable is False
    assert str(exc) == "boom"
    assert isinstance(exc, PanoplyError)


def test_legacy_names_and_their_defaults() -> None:
    assert TokenValidationException("x").retryable is False
    assert MetadataNotSupportedException("x").retryable is False
    timeout = BackgroundTimeoutError("slow", timeout=3.0)
    assert isinstance(timeout, TimeoutError)
    assert isinstance(timeout, PanoplyException)
    assert timeout.retryable is True
    assert timeout.timeout == 3.0
    wrong = WrongTypeOrValueError("bad")
    assert isinstance(wrong, TypeError)
    assert isinstance(wrong, ValueError)


def test_sdk_errors_are_re_exported() -> None:
    for name in _exceptions.__all__:
        assert getattr(errors, name) is getattr(_exceptions, name)


def test_error_code_table_is_the_legacy_one() -> None:
    assert sorted(ERROR_CODES) == [400, 401, 403, 404, 408, 422, 429, 500, 501, 506]
    assert ERROR_CODES[501] == "Unclassified error"


def test_method_of_a_data_source_is_normalised_with_its_source() -> None:
    with pytest.raises(DataSourceException) as info:
        Connector(dict(SOURCE)).fetch()
    exc = info.value
    assert exc.code == 401
    assert exc.message == "token expired"
    assert str(exc) == "token expired"
    assert exc.phase == "collect"
    assert (exc.source_type, exc.source_id, exc.database_id) == ("crm", "src-1", "db-9")
    assert exc.exception_cls == f"{__name__}.AuthError"
    assert isinstance(exc.__cause__, AuthError)
    assert exc.created_at.tzinfo is not None


def test_function_taking_source_first_is_normalised_with_it() -> None:
    @wrap_errors("config")
    def definition(source: dict[str, Any], options: dict[str, Any]) -> None:
        raise KeyError("field")

    with pytest.raises(DataSourceException) as info:
        definition(dict(SOURCE), {})
    assert info.value.phase == "config"
    assert info.value.code == 501  # KeyError has no registered code
    assert info.value.source_id == "src-1"
    assert info.value.exception_cls == "builtins.KeyError"


def test_codes_inherit_and_unknown_codes_become_506() -> None:
    @wrap_errors(Phase.COLLECT)
    def raise_(exc: Exception) -> None:
        raise exc

    with pytest.raises(DataSourceException) as child:
        raise_(ChildAuthError("x"))
    assert child.value.code == 401
    with pytest.raises(DataSourceException) as weird:
        raise_(WeirdCodeError("x"))
    assert weird.value.code == 506
    with pytest.raises(DataSourceException) as no_source:
        raise_(ValueError("x"))
    assert no_source.value.source_type is None


def test_retryable_flag_survives_normalisation() -> None:
    @wrap_errors(Phase.COLLECT)
    def fail() -> None:
        raise PanoplyException("gone", retryable=False)

    with pytest.raises(DataSourceException) as info:
        fail()
    assert info.value.retryable is False


def test_nested_wrappers_keep_the_inner_error_and_the_outer_phase() -> None:
    @wrap_errors(Phase.COLLECT)
    def inner(source: dict[str, Any]) -> None:
        raise AuthError("inner")

    @wrap_errors(Phase.CONFIG)
    def outer(source: dict[str, Any]) -> None:
        inner(source)

    with pytest.raises(DataSourceException) as info:
        outer(dict(SOURCE))
    assert info.value.phase == "config"
    assert info.value.message == "inner"
    assert info.value.code == 401


def test_success_passes_through_untouched() -> None:
    @wrap_errors(Phase.COLLECT)
    def ok(x: int) -> int:
        return x * 2

    assert ok(21) == 42
    assert ok.__name__ == "ok"


async def test_coroutine_functions_are_normalised() -> None:
    class Async(DataSource):
        @wrap_errors(Phase.COLLECT)
        async def fetch(self) -> int:
            raise AuthError("async")

        @wrap_errors(Phase.COLLECT)
        async def fine(self) -> int:
            return 7

    ds = Async(dict(SOURCE))
    assert await ds.fine() == 7
    with pytest.raises(DataSourceException) as info:
        await ds.fetch()
    assert info.value.code == 401
    assert info.value.source_type == "crm"


async def test_async_generators_are_normalised_and_keep_their_items() -> None:
    class Gen(DataSource):
        @wrap_errors(Phase.COLLECT)
        async def read(self, n: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
            yield [{"a": 1}]
            raise AuthError("mid-stream")

    got: list[Any] = []

    async def drain() -> None:
        async for batch in Gen(dict(SOURCE)).read():
            got.append(batch)

    with pytest.raises(DataSourceException) as info:
        await drain()
    assert got == [[{"a": 1}]]
    assert info.value.code == 401


async def test_closing_a_wrapped_generator_closes_the_inner_one() -> None:
    closed: list[bool] = []

    @wrap_errors(Phase.COLLECT)
    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            closed.append(True)

    gen = numbers()
    assert await gen.__anext__() == 0
    await gen.aclose()  # type: ignore[attr-defined]
    assert closed == [True]


def test_base_exceptions_are_not_normalised() -> None:
    class Stop(BaseException):
        pass

    @wrap_errors(Phase.COLLECT)
    def stop() -> None:
        raise Stop()

    with pytest.raises(Stop):
        stop()


def test_bad_uses_are_refused() -> None:
    with pytest.raises(TypeError):
        set_internal_code(400)(int)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="'ingest'"):
        wrap_errors("ingest")
