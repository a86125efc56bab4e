"""Connector exceptions and the legacy error normalisation (`wrap_errors`, `set_internal_code`)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import panoply_async
from panoply_async import errors
from panoply_async.connectors._datasource import DataSource
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


SDK_ERRORS = ["ConfigurationError", "CredentialsError", "DecodeError", "DeliveryError",
              "PanoplyError", "RecordError", "RecordTooLargeError", "RecordTypeError"]


def test_sdk_errors_are_defined_in_errors_and_re_exported() -> None:
    for name in SDK_ERRORS:
        assert getattr(errors, name).__module__ == "panoply_async.errors"
        assert getattr(panoply_async, name) is getattr(errors, name)


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


# Issue 12, "one story for errors": one module to import every exception from, one root.
def _listed_exceptions() -> dict[str, type[BaseException]]:
    found = {name: getattr(errors, name) for name in errors.__all__}
    return {
        name: value
        for name, value in found.items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }


def _package_modules() -> list[str]:
    # __main__ runs the command line when imported.
    return sorted(
        info.name
        for info in pkgutil.walk_packages(panoply_async.__path__, "panoply_async.")
        if not info.name.endswith("__main__")
    )


def test_every_listed_exception_derives_from_the_root() -> None:
    listed = _listed_exceptions()
    assert len(listed) >= 20
    for name, cls in listed.items():
        assert issubclass(cls, PanoplyError), name
        assert cls.__name__ == name


def test_every_exception_of_the_package_is_importable_from_errors() -> None:
    defined: dict[str, type[BaseException]] = {}
    for module_name in _package_modules():
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module_name
                and not name.startswith("_")
            ):
                defined[f"{module_name}.{name}"] = value
    assert "panoply_async.errors.ConnectorError" in defined
    missing = [
        where
        for where, cls in defined.items()
        if cls.__name__ not in errors.__all__ or getattr(errors, cls.__name__) is not cls
    ]
    assert missing == [], "not exported by panoply_async.errors"


def test_existing_relationships_are_kept() -> None:
    expected = {
        "RecordError": (ValueError,),
        "RecordTypeError": (errors.RecordError, TypeError, ValueError),
        "RecordTooLargeError": (errors.RecordError,),
        "CredentialsError": (ValueError,),
        "ConfigurationError": (ValueError,),
        "DecodeError": (ValueError,),
        "ConnectorError": (ValueError,),
        "ScaffoldError": (ValueError,),
        "SSHTunnelConfigError": (ValueError,),
        "IncorrectParamError": (ValueError,),
        "WrongTypeOrValueError": (TypeError, ValueError),
        "BackgroundTimeoutError": (PanoplyException, TimeoutError),
        "DataSourceException": (PanoplyException,),
        "TokenValidationException": (PanoplyException,),
        "MetadataNotSupportedException": (PanoplyException,),
        "PanoplyException": (PanoplyError,),
    }
    for name, bases in expected.items():
        for base in bases:
            assert issubclass(getattr(errors, name), base), (name, base)
    assert errors.SendError is panoply_async.SendError
    assert errors.ConnectorError is panoply_async.ConnectorError


def test_errors_imports_first_and_star_import_gives_everything() -> None:
    # A fresh interpreter that starts at panoply_async.errors: the names defined in
    # modules that import errors themselves must resolve without an import cycle.
    code = (
        "from panoply_async.errors import *\n"
        "import panoply_async.errors as e\n"
        "names = [n for n in e.__all__ if n not in globals()]\n"
        "assert not names, names\n"
        "assert set(e.__all__) <= set(dir(e))\n"
        "print(len(e.__all__))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(errors.__all__)


def _module_level_imports(module_name: str, path: Path) -> set[str]:
    """Modules of the package that ``module_name`` imports when it is loaded
    (imports inside functions and ``if TYPE_CHECKING:`` blocks do not count)."""
    package = module_name if path.name == "__init__.py" else module_name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("panoply_async")}


def test_no_import_cycle_at_module_level() -> None:
    modules = {
        name: Path(importlib.util.find_spec(name).origin)  # type: ignore[union-attr,arg-type]
        for name in _package_modules()
    }
    graph = {
        name: {dep for dep in _module_level_imports(name, path) if dep in modules and dep != name}
        for name, path in modules.items()
    }
    # A package's __init__ runs before any of its modules; edges into a package
    # from its own modules are the normal `from . import x` shape, not a cycle.
    for name in graph:
        graph[name] = {dep for dep in graph[name] if not name.startswith(dep + ".")}

    def cycle_from(start: str) -> list[str] | None:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    return [*trail, dep]
                if dep not in trail:
                    stack.append((dep, [*trail, dep]))
        return None

    cycles = [cycle for name in graph if (cycle := cycle_from(name))]
    assert cycles == []


def _hierarchy() -> str:
    """The tree of ``errors.__all__``'s exceptions as docs/reference.md draws it."""
    classes = set(_listed_exceptions().values())

    def parent(cls: type) -> type | None:
        return next((base for base in cls.__mro__[1:] if base in classes), None)

    def label(cls: type) -> str:
        above = parent(cls)
        builtin = [
            base.__name__
            for base in cls.__bases__
            if base not in classes and (above is None or not issubclass(above, base))
        ]
        return cls.__name__ + (f" ({', '.join(builtin)})" if builtin else "")

    children: dict[type | None, list[type]] = {}
    for cls in classes:
        children.setdefault(parent(cls), []).append(cls)
    lines: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        kids = sorted(children.get(cls, []), key=lambda k: k.__name__)
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(prefix + ("└── " if last else "├── ") + label(kid))
            walk(kid, prefix + ("    " if last else "│   "))

    for root in sorted(children[None], key=lambda k: k.__name__):
        lines.append(label(root))
        walk(root, "")
    return "\n".join(lines) + "\n"


def test_reference_draws_the_hierarchy_as_it_is() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "reference.md").read_text("utf-8")
    errors_section = text.split("\n## Errors\n", 1)[1]
    drawn = errors_section.split("```text\n", 1)[1].split("```", 1)[0]
    expected = _hierarchy()
    assert drawn == expected, f"docs/reference.md should draw:\n{expected}"
