"""The connector module contract: ``Stream`` and ``CONFIG``, every problem listed at once."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ._exceptions import PanoplyError
from .datasource import DataSource

__all__ = ["PARAM_TYPES", "ConnectorError", "check_connector", "load_connector",
           "validate_connector"]

#: the values ``CONFIG["params"][i]["type"]`` may take
PARAM_TYPES = frozenset(
    {"text", "string", "password", "number", "integer", "boolean", "list", "select", "url",
     "email", "textarea", "date"}
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARAM_KEYS = {"name", "title", "placeholder", "help", "type", "required", "secret", "default",
               "options"}


class ConnectorError(PanoplyError, ValueError):
    """A connector module cannot be loaded or breaks the contract; ``problems`` lists why."""

    def __init__(self, target: str, problems: list[str]) -> None:
        super().__init__(f"{target}: " + "; ".join(problems))
        self.target = target
        self.problems = problems


def load_connector(target: str) -> ModuleType:
    """Import ``target``: a module name, a path to a ``.py`` file, or a package directory."""
    path = Path(target)
    if target.endswith(".py") or path.is_dir() or path.is_file():
        if path.is_dir():
            init = path / "__init__.py"
            if not init.is_file():
                raise ConnectorError(target, ["directory has no __init__.py"])
            file, name = init, path.resolve().name
            locations: list[str] | None = [str(path.resolve())]
        elif path.is_file():
            file, name, locations = path, path.stem, None
        else:
            raise ConnectorError(target, [f"no such file: {target}"])
        # A private module name: a connector file called numbers.py or json.py
        # must not shadow the standard library for everything imported later.
        name = f"panoply_connector_{re.sub(r'[^0-9A-Za-z_]', '_', name)}"
        spec = importlib.util.spec_from_file_location(
            name, file, submodule_search_locations=locations
        )
        if spec is None or spec.loader is None:
            raise ConnectorError(target, ["cannot be imported"])
        module = importlib.util.module_from_spec(spec)
        # Registered before running so that classes defined in it resolve their module.
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ConnectorError(target, [f"import failed: {type(exc).__name__}: {exc}"]) from exc
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise ConnectorError(target, [f"cannot import module {target!r}: {exc}"]) from exc
    except Exception as exc:
        raise ConnectorError(target, [f"import failed: {type(exc).__name__}: {exc}"]) from exc


def connector_name(target: str) -> str:
    """A short name for the connector at ``target``: file stem, directory or last dotted part."""
    path = Path(target)
    if target.endswith(".py") or path.is_file():
        return path.stem
    if path.is_dir():
        return path.resolve().name
    return target.rsplit(".", 1)[-1]


def _check_params(params: Any) -> list[str]:
    if not isinstance(params, list):
        return [f"CONFIG['params'] must be a list, not {type(params).__name__}"]
    problems: list[str] = []
    seen: set[str] = set()
    for index, param in enumerate(params):
        where = f"CONFIG['params'][{index}]"
        if not isinstance(param, Mapping):
            problems.append(f"{where} must be a dict, not {type(param).__name__}")
            continue
        name = param.get("name")
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            problems.append(f"{where}['name'] must be an identifier-like string, got {name!r}")
        elif name in seen:
            problems.append(f"{where}['name'] {name!r} is used twice")
        else:
            seen.add(name)
            where = f"param {name!r}"
        for key in ("title", "placeholder", "help"):
            if key in param and not isinstance(param[key], str):
                problems.append(f"{where}: {key!r} must be a string")
        for key in ("required", "secret"):
            if key in param and not isinstance(param[key], bool):
                problems.append(f"{where}: {key!r} must be true or false")
        kind = param.get("type", "text")
        if not isinstance(kind, str) or kind.lower() not in PARAM_TYPES:
            allowed = ", ".join(sorted(PARAM_TYPES))
            problems.append(f"{where}: type {kind!r} is not one of {allowed}")
        unknown = set(param) - _PARAM_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
    return problems


def check_connector(module: ModuleType) -> list[str]:
    """Every way ``module`` breaks the contract; empty when it is a valid connector."""
    problems: list[str] = []
    stream = getattr(module, "Stream", None)
    if stream is None:
        problems.append("no Stream: the module must define Stream, a DataSource subclass")
    elif not (isinstance(stream, type) and issubclass(stream, DataSource)):
        problems.append("Stream must be a subclass of panoply_async.DataSource")
    elif stream.read is DataSource.read:
        problems.append("Stream does not implement read()")
    config = getattr(module, "CONFIG", None)
    if config is None:
        problems.append("no CONFIG: the module must define CONFIG, a dict")
        return problems
    if not isinstance(config, Mapping):
        problems.append(f"CONFIG must be a dict, not {type(config).__name__}")
        return problems
    title = config.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append("CONFIG['title'] must be a non-empty string")
    icon = config.get("icon")
    if not isinstance(icon, str) or not icon.startswith("data:image/"):
        problems.append("CONFIG['icon'] must be a data URL ('data:image/...')")
    problems.extend(_check_params(config.get("params", [])))
    return problems


def validate_connector(target: str) -> ModuleType:
    """Load ``target`` and check it; raise :class:`ConnectorError` listing every problem."""
    module = load_connector(target)
    problems = check_connector(module)
    if problems:
        raise ConnectorError(target, problems)
    return module
