"""The connector module contract: ``Stream`` and ``CONFIG``, every problem listed at once.

A connector module defines:

* ``Stream``: a :class:`~panoply_async.datasource.DataSource` subclass that
  implements ``read`` (an async generator, or a legacy plain method), or declares
  ``streams`` and implements ``read_stream`` (an async generator);
* ``CONFIG``: a dict with ``title`` (a non-empty string), ``icon`` (a
  ``data:image/...`` URL) and ``params``, a list of dicts, each with a unique
  identifier-like ``name`` and optionally ``title``, ``placeholder``, ``help``
  (strings), ``type`` (one of :data:`PARAM_TYPES`, default ``"text"``),
  ``required``, ``secret`` (booleans), ``default``, ``values`` and
  ``dependencies`` (names of other params). Other keys (legacy connectors
  carry ``categories``, ``keywords``, ``link``...) are allowed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConnectorError
from ._datasource import DataSource
from ._panoply_alias import install
from ._streams import StreamSpec

__all__ = [
    "PARAM_TYPES",
    "check_connector",
    "connector_name",
    "load_connector",
    "validate_connector",
]

#: the values ``CONFIG["params"][i]["type"]`` may take (any case), legacy ones included:
#: ``oauth`` (a token the platform's OAuth flow fills in), ``object``/``json`` and the
#: other form widgets of the legacy platform
PARAM_TYPES = frozenset(
    {"text", "string", "str", "password", "number", "integer", "int", "float", "boolean",
     "bool", "checkbox", "list", "array", "select", "multiselect", "radio", "tags", "url",
     "email", "textarea", "date", "datetime", "daterange", "hidden", "oauth", "object",
     "dict", "json", "file", "dynamic"}
)
_NUMBER_TYPES = frozenset({"number", "integer", "int"})
_BOOLEAN_TYPES = frozenset({"boolean", "bool", "checkbox"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+(;[A-Za-z0-9=.+-]+)*,.+", re.DOTALL)


def _is_path(target: str) -> bool:
    path = Path(target)
    return target.endswith(".py") or "/" in target or "\\" in target or path.exists()


def load_connector(target: str) -> ModuleType:
    """Import ``target``: a module name, a path to a ``.py`` file, or a package directory.

    A file or directory is imported under a private module name
    (``panoply_connector_<name>``), so that a connector called ``json.py``
    cannot shadow the standard library. Raises :class:`ConnectorError` when
    ``target`` does not exist or fails to import.

    :func:`panoply_async.compat.install` is called first, so that a legacy
    connector's ``import panoply`` gets the compatibility layer when the legacy
    package is not installed.
    """

    install()
    if not _is_path(target):
        try:
            return importlib.import_module(target)
        except ImportError as exc:
            raise ConnectorError(target, [f"cannot import module {target!r}: {exc}"]) from exc
        except Exception as exc:
            raise ConnectorError(target, [f"import failed: {type(exc).__name__}: {exc}"]) from exc
    path = Path(target).resolve()
    locations: list[str] | None = None
    if path.is_dir():
        file = path / "__init__.py"
        if not file.is_file():
            raise ConnectorError(target, ["the directory has no __init__.py"])
        locations = [str(path)]
        stem = path.name
    elif path.is_file():
        file, stem = path, path.stem
    else:
        raise ConnectorError(target, [f"no such file or directory: {target}"])
    name = f"panoply_connector_{re.sub(r'[^0-9A-Za-z_]', '_', stem)}"
    spec = importlib.util.spec_from_file_location(name, file, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ConnectorError(target, ["cannot be imported"])
    module = importlib.util.module_from_spec(spec)
    # Registered before running so that classes defined in it resolve their
    # module (DataSource.log finds CONFIG through it).
    sys.modules[name] = module
    # Its directory is importable while it runs, as with `python file.py`, so
    # that a single-file connector can import modules beside it.
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConnectorError(target, [f"import failed: {type(exc).__name__}: {exc}"]) from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return module


def connector_name(target: str) -> str:
    """A short name for the connector at ``target``: file stem, directory or last dotted part."""
    path = Path(target)
    if target.endswith(".py") or path.is_file():
        return path.stem
    if path.is_dir():
        return path.resolve().name
    return target.rsplit(".", 1)[-1]


def _legacy_base(stream: type) -> type | None:
    """The class of the real legacy ``panoply`` package that ``stream`` derives from."""
    for cls in stream.__mro__:
        module = cls.__module__ or ""
        if module == "panoply" or module.startswith("panoply."):
            return cls
    return None


def _legacy_package_problem(stream: type, base: type) -> str:
    module = sys.modules.get(base.__module__)
    where = getattr(module, "__file__", None)
    found = f" (found at {Path(where).parent})" if where else ""
    return (
        f"Stream subclasses {base.__module__}.{base.__qualname__} of the legacy "
        f"panoply-python-sdk package{found}, not panoply_async.DataSource: a real `panoply` "
        "package is installed, so `import panoply` gives it instead of panoply-async's "
        "compatibility layer. Fix: uninstall it (`pip uninstall panoply-python-sdk`), or "
        "write `import panoply_async.compat as panoply` in the connector"
    )


def _read_signature_problem(stream: type) -> str | None:
    """A problem when ``read`` cannot be called as ``read(n)`` nor as ``read()``."""
    raw = inspect.getattr_static(stream, "read", None)
    func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    if not isinstance(raw, staticmethod):
        parameters = parameters[1:]  # self, or cls
    required = [
        p.name for p in parameters
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if len(required) > 1 or any(
        p.kind is p.KEYWORD_ONLY and p.default is p.empty for p in parameters
    ):
        return (f"Stream.read needs the arguments {required}: it is called as read(n), "
                "with n the batch-size hint (or as read() when it takes no argument)")
    return None


def _check_stream(module: ModuleType) -> list[str]:
    stream = getattr(module, "Stream", None)
    if stream is None:
        return ["no Stream: the module must define Stream, a DataSource subclass"]
    if isinstance(stream, type) and not issubclass(stream, DataSource):
        base = _legacy_base(stream)
        if base is not None:
            return [_legacy_package_problem(stream, base)]
    if not (isinstance(stream, type) and issubclass(stream, DataSource)):
        shown = stream.__name__ if isinstance(stream, type) else type(stream).__name__
        return [f"Stream must be a subclass of panoply_async.DataSource, not {shown}"]
    read = getattr(stream, "read", None)
    if read is DataSource.read:
        return _stream_reader_problems(stream)
    if read is None:
        return ["Stream does not implement read()"]
    if not callable(read):
        return ["Stream.read must be a method"]
    if inspect.iscoroutinefunction(read):
        return ["Stream.read is an `async def` that returns: make it an async generator "
                "(`yield` each batch), or a plain method (legacy protocol)"]
    problems = [p for p in (_init_signature_problem(stream), _read_signature_problem(stream))
                if p]
    return problems


def _stream_reader_problems(stream: type[DataSource]) -> list[str]:
    """Problems of a Stream that reads streams (``read_stream``) instead of ``read``."""
    if stream.read_stream is DataSource.read_stream:
        return ["Stream does not implement read() (or read_stream() for its streams)"]
    if not inspect.isasyncgenfunction(stream.read_stream):
        return ["Stream.read_stream must be an async generator (`yield` each batch)"]
    declared = stream.streams
    if not isinstance(declared, (list, tuple)) or not all(
            isinstance(spec, StreamSpec) for spec in declared):
        return ["Stream.streams must be a list of StreamSpec"]
    names = [spec.name for spec in declared]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    problems = [f"Stream.streams declares {name!r} twice" for name in duplicates]
    init = _init_signature_problem(stream)
    return problems + ([init] if init else [])


def _init_signature_problem(stream: type) -> str | None:
    """A problem when ``Stream(source, options)``, how the runner builds it, cannot bind."""
    try:
        signature = inspect.signature(stream)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind({}, {})
    except TypeError as exc:
        return (f"Stream(source, options) cannot be called ({exc}): the runner passes the "
                "source dict and an options dict; take `options=None` as a second parameter")
    return None


def _check_param(param: Mapping[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    for key in ("title", "placeholder", "help"):
        if key in param and not isinstance(param[key], str):
            problems.append(f"{where}: {key!r} must be a string, not {type(param[key]).__name__}")
    for key in ("required", "secret"):
        if key in param and not isinstance(param[key], bool):
            problems.append(f"{where}: {key!r} must be true or false, not {param[key]!r}")
    kind = param.get("type", "text")
    if not isinstance(kind, str) or kind.lower() not in PARAM_TYPES:
        allowed = ", ".join(sorted(PARAM_TYPES))
        problems.append(f"{where}: type {kind!r} is not one of {allowed}")
        return problems
    default = param.get("default")
    kind = kind.lower()
    if default is not None:
        if kind in _BOOLEAN_TYPES and not isinstance(default, bool):
            problems.append(f"{where}: the default of a {kind} param must be true or false")
        elif kind in _NUMBER_TYPES and (
            isinstance(default, bool) or not isinstance(default, (int, float))
        ):
            problems.append(f"{where}: the default of a {kind} param must be a number")
    return problems


def _check_params(params: Any) -> list[str]:
    if not isinstance(params, list):
        return [f"CONFIG['params'] must be a list of dicts, not {type(params).__name__}"]
    problems: list[str] = []
    seen: set[str] = set()
    dependencies: list[tuple[str, Any]] = []
    for index, param in enumerate(params):
        where = f"CONFIG['params'][{index}]"
        if not isinstance(param, Mapping):
            problems.append(f"{where} must be a dict, not {type(param).__name__}")
            continue
        name = param.get("name")
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            problems.append(f"{where}: 'name' must be an identifier-like string, got {name!r}")
        elif name in seen:
            problems.append(f"{where}: name {name!r} is used twice")
        else:
            seen.add(name)
            where = f"{where} ({name!r})"
        problems.extend(_check_param(param, where))
        if "dependencies" in param:
            dependencies.append((where, param["dependencies"]))
    for where, names in dependencies:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append(f"{where}: 'dependencies' must be a list of param names")
            continue
        unknown = [n for n in names if n not in seen]
        if unknown:
            problems.append(f"{where}: 'dependencies' names unknown params {unknown}")
    return problems


def _check_config(module: ModuleType) -> list[str]:
    config = getattr(module, "CONFIG", None)
    if config is None:
        return ["no CONFIG: the module must define CONFIG, a dict"]
    if not isinstance(config, Mapping):
        return [f"CONFIG must be a dict, not {type(config).__name__}"]
    problems: list[str] = []
    title = config.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append(f"CONFIG['title'] must be a non-empty string, got {title!r}")
    icon = config.get("icon")
    if not isinstance(icon, str) or not _DATA_URL.match(icon):
        shown = repr(icon) if not isinstance(icon, str) else repr(icon[:40])
        problems.append(f"CONFIG['icon'] must be a data URL ('data:image/...,...'), got {shown}")
    if "params" not in config:
        problems.append("CONFIG has no 'params': give a list of dicts, [] when there are none")
    else:
        problems.extend(_check_params(config["params"]))
    return problems


def check_connector(module: ModuleType) -> list[str]:
    """Every way ``module`` breaks the contract, one message each; empty when it
    is a valid connector module."""
    return _check_stream(module) + _check_config(module)


def validate_connector(target: str) -> ModuleType:
    """Load ``target`` (see :func:`load_connector`) and check it; raise
    :class:`ConnectorError` listing every problem, else return the module."""
    module = load_connector(target)
    problems = check_connector(module)
    if problems:
        raise ConnectorError(target, problems)
    return module
