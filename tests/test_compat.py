"""``panoply_async.compat``: the legacy ``panoply`` layout, ``install()``, and legacy
connectors running unchanged (in process and through the real console script)."""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import panoply_async
import panoply_async.compat as compat
from panoply_async import SDK, MemoryTransport, decode_body
from panoply_async._engine.legacy_read import call_read
from panoply_async._engine.pipeline import _close
from panoply_async._engine.sdk import SDK_NAME
from panoply_async.connectors import _panoply_alias as _install
from panoply_async.local import make_credentials

TESTS = Path(__file__).resolve().parent
LEGACY_CONNECTOR = TESTS / "legacy_connector"
SCRIPT = str(Path(sys.executable).with_name("panoply-async"))


def _panoply_modules() -> dict[str, Any]:
    return {n: m for n, m in sys.modules.items() if n == "panoply" or n.startswith("panoply.")}


@pytest.fixture
def clean_import_state() -> Iterator[None]:
    """No ``panoply`` imported and the finder not installed, before and after."""
    saved_modules = _panoply_modules()
    saved_meta_path, saved_path = list(sys.meta_path), list(sys.path)
    for name in saved_modules:
        del sys.modules[name]
    compat.uninstall()
    try:
        yield
    finally:
        compat.uninstall()
        for name in _panoply_modules():
            del sys.modules[name]
        sys.modules.update(saved_modules)
        sys.meta_path[:] = saved_meta_path
        sys.path[:] = saved_path
        importlib.invalidate_caches()


def fake_real_panoply(root: Path) -> Path:
    """A stand-in for the installed legacy package: ``panoply`` with ``errors`` and
    ``datasource`` submodules, under ``root``."""
    package = root / "panoply"
    (package / "errors").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "REAL_LEGACY = True\nfrom .datasource import DataSource\n", encoding="utf-8"
    )
    (package / "datasource.py").write_text(
        "class DataSource:\n"
        "    def __init__(self, source, options={}):\n"
        "        self.source = source\n",
        encoding="utf-8",
    )
    (package / "errors" / "__init__.py").write_text("REAL_LEGACY = True\n", encoding="utf-8")
    importlib.invalidate_caches()
    return root


# --- the layout ---------------------------------------------------------------------------


def test_legacy_names_are_the_real_classes() -> None:
    assert compat.DataSource is panoply_async.DataSource
    assert compat.datasource.DataSource is panoply_async.DataSource
    assert compat.errors.PanoplyException is panoply_async.PanoplyException
    assert compat.errors.exceptions.TokenValidationException is (
        panoply_async.TokenValidationException
    )
    assert compat.errors.error_normalization.ERROR_CODES_REGISTRY is panoply_async.ERROR_CODES
    assert compat.SDK is compat.sdk.SDK
    assert compat.SDK is importlib.import_module("panoply_async.sync._legacy_sdk").SDK
    assert compat.to_record is panoply_async.to_record
    assert compat.records.to_record is panoply_async.to_record
    assert compat.__package_name__ + "-" + compat.__version__ == SDK_NAME
    assert compat.constants.__version__ == panoply_async.__version__


def test_exceptions_registry_is_the_one_wrap_errors_reads() -> None:
    @compat.errors.set_internal_code(429)
    class RateLimited(Exception):
        pass

    assert compat.errors.EXCEPTIONS_REGISTRY[RateLimited] == 429

    class Source(compat.DataSource):
        @compat.errors.wrap_errors(compat.errors.Phase.COLLECT)
        def fetch(self) -> None:
            raise RateLimited("slow down")

    with pytest.raises(compat.errors.DataSourceException) as raised:
        Source({"type": "crm", "id": 7, "database": "db"}).fetch()
    error = raised.value
    assert (error.code, error.phase, error.source_type, error.source_id, error.database_id) == (
        429, "collect", "crm", 7, "db")
    assert error.message == "slow down"


def test_token_validation_exception_takes_both_signatures() -> None:
    cause = ValueError("refused")
    legacy = compat.errors.TokenValidationException(cause, "could not refresh")
    assert (legacy.original_error, str(legacy), legacy.retryable) == (
        cause, "could not refresh", True)  # the legacy default
    legacy = compat.errors.TokenValidationException(cause, "could not refresh", retryable=False)
    assert legacy.retryable is False
    legacy = compat.errors.TokenValidationException(None, "no cause", False)
    assert (legacy.original_error, str(legacy), legacy.retryable) == (None, "no cause", False)
    legacy = compat.errors.TokenValidationException(cause, args="by keyword")
    assert (legacy.original_error, str(legacy), legacy.retryable) == (cause, "by keyword", True)
    # The panoply-async form keeps its own default.
    ours = panoply_async.TokenValidationException("expired", original_error=cause)
    assert (ours.original_error, str(ours), ours.retryable) == (cause, "expired", False)
    assert panoply_async.TokenValidationException("expired", True).retryable is True
    with pytest.raises(TypeError):
        panoply_async.TokenValidationException(cause, "m", True, "extra")


def test_other_legacy_exception_signatures() -> None:
    assert str(compat.errors.IncorrectParamError(msg="bad port")) == "bad port"
    assert str(compat.errors.IncorrectParamError("bad host")) == "bad host"
    assert isinstance(compat.errors.IncorrectParamError(), ValueError)
    error = compat.errors.PanoplyException("try later", False)
    assert (str(error), error.retryable) == ("try later", False)
    assert compat.errors.PanoplyException("x").retryable is True
    normalized = compat.errors.DataSourceException("m", 500, "a.B", "collect", "t", 1, 2)
    assert (normalized.code, normalized.source_type, normalized.database_id) == (500, "t", 2)


def test_records_keep_the_legacy_errors_and_shapes() -> None:
    group = compat.to_record("accounts", {"id": 1})
    assert group["data"] == [{"id": 1}]
    assert group["metadata"]["resource_id"] == "accounts"
    assert group["metadata"]["timestamp"].endswith("Z")
    with pytest.raises(TypeError):
        compat.to_record(3, [])
    with pytest.raises(ValueError, match="non-empty"):
        compat.to_record("  ", [])
    with pytest.raises(TypeError):
        compat.records.validate_resource(None)
    with pytest.raises(ValueError, match="non empty"):
        compat.records.validate_resource("")
    assert compat.records.normalize_data({"a": 1}) == [{"a": 1}]
    with pytest.raises(TypeError, match="should be of type dict"):
        compat.records.normalize_data([{"a": 1}, "b"])
    with pytest.raises(TypeError, match="list or dict"):
        compat.records.normalize_data("text")
    stamp = compat.records.get_iso_string()
    assert len(stamp) == len("2024-05-01T12:00:00.000Z")
    assert stamp.endswith("Z")


def test_events_emitter() -> None:
    seen: list[Any] = []
    emitter = compat.events.Emitter()
    assert emitter.on("*", lambda name, data: seen.append(("*", name, data))) is emitter
    emitter.on("progress", seen.append)
    emitter.on("progress", seen.append)  # once per function, as in the legacy class
    assert emitter.fire("progress", 1) is emitter
    emitter.fire("other", 2)
    assert seen == [("*", "progress", 1), 1, ("*", "other", 2)]


# --- install() ----------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_import_state")
def test_install_makes_import_panoply_the_compat_layer() -> None:
    assert compat.install() is True
    assert compat.install() is True  # idempotent
    assert sys.meta_path.count(_install._FINDER) == 1
    import panoply
    import panoply.errors
    import panoply.errors.error_normalization
    import panoply.errors.exceptions
    from panoply.resources import convert_to_ui_format

    assert panoply is compat
    assert panoply.errors is compat.errors
    assert panoply.errors.exceptions is compat.errors.exceptions
    assert panoply.errors.error_normalization is compat.errors.error_normalization
    assert convert_to_ui_format is compat.resources.convert_to_ui_format
    assert importlib.import_module("panoply.ssh").SSHTunnel is compat.SSHTunnel
    assert importlib.import_module("panoply.sdk").SDK is compat.SDK
    assert compat.installed()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("panoply.no_such_module")


@pytest.mark.usefixtures("clean_import_state")
def test_install_never_shadows_a_real_panoply(tmp_path: Path) -> None:
    sys.path.insert(0, str(fake_real_panoply(tmp_path)))
    assert compat.install() is False
    import panoply
    import panoply.errors

    assert panoply.REAL_LEGACY is True
    assert panoply is not compat
    assert panoply.errors.REAL_LEGACY is True
    assert not compat.installed()


@pytest.mark.usefixtures("clean_import_state")
def test_a_real_panoply_appearing_after_install_wins(tmp_path: Path) -> None:
    assert compat.install() is True
    sys.path.insert(0, str(fake_real_panoply(tmp_path)))
    import panoply

    assert panoply.REAL_LEGACY is True


@pytest.mark.usefixtures("clean_import_state")
def test_an_already_imported_real_panoply_is_kept(tmp_path: Path) -> None:
    sys.path.insert(0, str(fake_real_panoply(tmp_path)))
    real = importlib.import_module("panoply")
    sys.path.remove(str(tmp_path))
    assert compat.install() is False
    import panoply
    import panoply.errors

    assert panoply is real
    assert panoply.errors.REAL_LEGACY is True


@pytest.mark.usefixtures("clean_import_state")
def test_load_connector_installs_the_compat_layer(tmp_path: Path) -> None:
    connector = tmp_path / "legacy_one.py"
    connector.write_text(
        "import panoply\n"
        "from panoply.errors import IncorrectParamError\n"
        "CONFIG = {'title': 'T', 'icon': 'data:image/png;base64,AA==', 'params': []}\n"
        "class Stream(panoply.DataSource):\n"
        "    def read(self):\n"
        "        return None\n",
        encoding="utf-8",
    )
    module = panoply_async.validate_connector(str(connector))
    assert issubclass(module.Stream, panoply_async.DataSource)


def test_validate_names_the_real_legacy_package(tmp_path: Path) -> None:
    fake_real_panoply(tmp_path / "site")
    connector = tmp_path / "old_source.py"
    connector.write_text(
        "import panoply\n"
        "CONFIG = {'title': 'T', 'icon': 'data:image/png;base64,AA==', 'params': []}\n"
        "class Stream(panoply.DataSource):\n"
        "    def read(self):\n"
        "        return None\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run([SCRIPT, "validate", str(connector)], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "panoply.datasource.DataSource of the legacy panoply-python-sdk" in message
    assert str(tmp_path / "site" / "panoply") in message
    assert "pip uninstall panoply-python-sdk" in message
    assert "import panoply_async.compat as panoply" in message


# --- legacy read() ------------------------------------------------------------------------


class NoArgRead(compat.DataSource):
    def __init__(self, source: dict[str, Any], options: dict[str, Any]) -> None:
        super().__init__(source, options)
        self.pages = [[{"id": 1}, {"id": 2}], [compat.to_record("groups", [{"id": 3}]),
                                              {"id": 4}]]
        self.closed = False

    def read(self) -> list[Any] | None:
        return self.pages.pop(0) if self.pages else None

    def close(self) -> None:
        self.closed = True


class NoArgAsyncRead(panoply_async.DataSource):
    async def read(self) -> Any:  # type: ignore[override]
        yield [{"id": 1}]


async def ingest(source: panoply_async.DataSource) -> tuple[Any, list[dict[str, Any]]]:
    transport = MemoryTransport()
    apikey, apisecret = make_credentials("compat")
    async with SDK(apikey, apisecret, transport=transport) as conn:
        result = await conn.ingest(source, batch_size=10)
    records = [r for body in transport.bodies for r in decode_body(body)]
    return result, records


async def test_legacy_read_without_n_and_mixed_record_groups() -> None:
    source = NoArgRead({"type": "legacy"}, {})
    result, records = await ingest(source)
    assert sorted((r["__table"], r["id"]) for r in records) == [
        ("groups", 3), ("legacy", 1), ("legacy", 2), ("legacy", 4)]
    assert result.tables == {"legacy": 3, "groups": 1}
    assert source.closed


async def test_async_read_without_n() -> None:
    _, records = await ingest(NoArgAsyncRead({"type": "t"}))
    assert [r["id"] for r in records] == [1]


class Blocked(panoply_async.DataSource):
    def __init__(self) -> None:
        super().__init__({"type": "t"})
        self.release = threading.Event()
        self.returned = threading.Event()
        self.closed_while_reading: bool | None = None

    def read(self) -> list[Any] | None:  # type: ignore[override]
        self.release.wait(30)
        self.returned.set()
        return None

    def close(self) -> None:  # type: ignore[override]
        self.closed_while_reading = not self.returned.is_set()


async def test_close_waits_for_a_cancelled_read_then_abandons_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ds = Blocked()
    with anyio.CancelScope() as scope:
        scope.cancel()  # cancelled at its first wait: read() is left running in its thread
        await call_read(ds, ds.read, ())
    with caplog.at_level(logging.WARNING, "panoply_async.pipeline"):
        await _close(ds, read_wait=0.05)
    assert ds.closed_while_reading is None  # close() was not called
    assert "Blocked.read() is still running" in caplog.text
    assert "its thread is abandoned" in caplog.text
    ds.release.set()
    await _close(ds, read_wait=30)
    assert ds.closed_while_reading is False


# --- the legacy connector fixture through the console script ------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script, run from ``cwd`` (a temporary directory: a run may create its
    default spool directory there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPLY_")}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)


def test_legacy_connector_validates(tmp_path: Path) -> None:
    done = run_cli("validate", str(LEGACY_CONNECTOR), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ok (LegacyCRM, 4 params)" in done.stdout


def test_legacy_connector_dry_run(tmp_path: Path) -> None:
    done = run_cli("run", str(LEGACY_CONNECTOR), "--dry-run", "--access-token", "tok-123",
                   "--pages", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["__table"], r["id"]) for r in records] == [
        ("legacy_contacts", 0), ("legacy_contacts", 1),
        *[("legacy_connector", i) for i in range(6)]]
    assert {r["form"] for r in records if r["__table"] == "legacy_connector"} == {"signup"}


def test_legacy_connector_local(tmp_path: Path) -> None:
    done = run_cli("run", str(LEGACY_CONNECTOR), "--local", "--access-token", "tok-123",
                   "--pages", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    arrived = done.stderr[done.stderr.index("arrived at the local server:"):]
    assert "legacy_connector: 9" in arrived
    assert "legacy_contacts: 2" in arrived
    assert "closed" in done.stderr  # its plain close() ran


def test_aliasing_keeps_the_modules_own_spec() -> None:
    import importlib
    import importlib.util

    from panoply_async import compat

    compat.install()
    importlib.import_module("panoply.errors.exceptions")
    for name in ("panoply_async.compat", "panoply_async.compat.errors.exceptions"):
        spec = importlib.util.find_spec(name)
        assert spec is not None
        assert spec.name == name
        assert spec.origin is not None
