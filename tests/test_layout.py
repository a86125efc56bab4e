"""The package's shape (issue 18): no import circle, one errors module, the public API
where it always was, no private name read across modules, no oversized module.

Imports are read from the source (``ast``), so lazy imports inside functions and
imports under ``TYPE_CHECKING`` count as much as module-level ones.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import panoply_async

PACKAGE = Path(panoply_async.__file__).parent
ROOT_MODULES = {"__init__", "__main__", "_version", "errors", "testing", "local", "ssh"}
MAX_LINES = 450

# The order of the stages, lowest first: a module may import only from its own stage
# or a lower one (``errors`` and ``_version`` are below everything).
STAGES = [
    ("errors", "_version"),
    ("_wire",),
    ("_durable",),
    ("_engine",),
    ("connectors", "sync", "metrics"),
    ("_local", "local", "ssh", "testing"),
    ("cli",),
    ("compat",),
    ("__init__", "__main__"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: str) -> list[tuple[str, str]]:
    """(imported module, name taken from it or "") for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, "") if sub in MODULES else (target, alias.name))
    return [(t, n) for t, n in found if t == "panoply_async" or t.startswith("panoply_async.")]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {t for t, _ in _imports(module) if t in MODULES and t != module}
        # Every module imports the package's root __init__ implicitly (it is the parent);
        # that is not a dependency, so only explicit imports of it count.
        graph[module] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_reader_sees_lazy_and_type_checking_imports() -> None:
    # sdk.py imports Source only under TYPE_CHECKING; the pipeline imports the legacy
    # read adapter inside functions: both must be edges, or the circle test is blind.
    graph = _graph()
    assert "panoply_async._engine.source" in graph["panoply_async._engine.sdk"]
    assert "panoply_async._engine.legacy_read" in graph["panoply_async._engine.pipeline"]


def test_a_planted_circle_is_found() -> None:
    graph = {k: set(v) for k, v in _graph().items()}
    graph["panoply_async._wire.encoding"].add("panoply_async._engine.sdk")
    assert _cycle(graph) is not None


def test_no_import_circle_counting_lazy_and_type_checking_imports() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def _stage(module: str) -> int:
    first = module.split(".")[1] if "." in module else "__init__"
    for level, names in enumerate(STAGES):
        if first in names:
            return level
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES")


def test_dependencies_point_down_the_stages() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _stage(target) > _stage(module)
    ]
    assert upward == []


def test_the_package_root_holds_only_the_public_face() -> None:
    loose = {p.stem for p in PACKAGE.glob("*.py")} - ROOT_MODULES
    assert loose == set()


def test_every_exception_is_defined_in_errors() -> None:
    elsewhere = []
    for module, path in MODULES.items():
        if module.startswith(("panoply_async.errors._exceptions", "panoply_async.compat")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and (
                node.name.endswith(("Error", "Exception"))
            ):
                elsewhere.append(f"{module}.{node.name}")
    assert elsewhere == []


def test_errors_imports_nothing_of_the_package() -> None:
    errors = [m for m in MODULES if m.split(".")[:2] == ["panoply_async", "errors"]]
    assert len(errors) == 3
    outside = [
        t for m in errors for t, _ in _imports(m) if t.split(".")[:2] != ["panoply_async", "errors"]
    ]
    assert outside == []


def test_every_exception_presents_itself_as_panoply_async_errors() -> None:
    import panoply_async.errors as errors

    classes = [
        v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)
    ]
    assert len(classes) >= 28
    assert {c.__module__ for c in classes} == {"panoply_async.errors"}


def test_no_module_imports_another_modules_private_name() -> None:
    private = [
        f"{module}: {name} from {target}"
        for module in MODULES
        for target, name in _imports(module)
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert private == []


def test_no_private_attribute_is_read_except_on_self_or_cls() -> None:
    # What a neighbour needs is a public method of it, not its internals.
    reached = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                reached.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    assert reached == []


def test_no_module_over_the_size_limit() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


PUBLIC = {
    "panoply_async": [
        'ERROR_CODES', 'SDK', 'BackgroundTimeoutError', 'Checkpoint', 'ConfigurationError',
        'ConnectorError', 'Credentials', 'CredentialsError', 'DataSource',
        'DataSourceException', 'DecodeError', 'DeliveryError', 'EntryFailure', 'Field',
        'IncorrectParamError', 'IngestResult', 'MemoryTransport', 'Message', 'Metadata',
        'MetadataNotSupportedException', 'PanoplyError', 'PanoplyException', 'Phase',
        'RecordError', 'RecordGroup', 'RecordTooLargeError', 'RecordTypeError',
        'ReplayResult', 'Resource', 'SDKConfig', 'SQSTransport', 'SendError', 'SendOutcome',
        'Stats', 'SyncSDK', 'TokenValidationException', 'Transport', 'WALError',
        'WALLockedError', 'WrongTypeOrValueError', '__version__', 'background_progress',
        'check_connector', 'decode_body', 'encode_record', 'load_connector',
        'parse_credentials', 'set_internal_code', 'to_record', 'validate_connector',
        'validate_token', 'wrap_errors',
    ],
    "panoply_async.errors": [
        'ERROR_CODES', 'BackgroundTimeoutError', 'ConfigurationError', 'ConnectorError',
        'CredentialsError', 'DataSourceException', 'DecodeError', 'DeliveryError',
        'IncorrectParamError', 'MetadataNotSupportedException', 'PanoplyError',
        'PanoplyException', 'Phase', 'RecordError', 'RecordTooLargeError',
        'RecordTypeError', 'SSHTunnelConfigError', 'SSHTunnelError', 'ScaffoldError',
        'SendError', 'StateFileError', 'TokenValidationException', 'WALError',
        'WALLockedError', 'WALRecoveryError', 'WrongTypeOrValueError', 'code_for',
        'normalise', 'set_internal_code', 'wrap_errors',
    ],
    "panoply_async.compat": [
        "SDK", "DataSource", "Field", "Metadata", "Record", "RecordGroup", "Resource",
        "SSHTunnel", "__package_name__", "__version__", "background_progress", "constants",
        "convert_to_ui_format", "datasource", "decorators", "errors", "events",
        "get_iso_string", "install", "installed", "normalize_data", "records", "resources",
        "sdk", "ssh", "to_record", "uninstall", "validate_resource", "validate_token",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_yesterdays_public_names_still_import(module: str) -> None:
    # The lists are the public API as it stood before the package was reorganised.
    imported = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(imported, name)]
    assert missing == []
    assert set(PUBLIC[module]) <= set(dir(imported))
