"""The k-th-call fault sweep (issue 19): fail each I/O call of a run, check the promise.

A representative run of the write-ahead log, of the spool and of the state file
is first counted through the durable layer's I/O seam (``fileio``); then, for
every call site and a spread of the other calls, the run is repeated with that
call failing with ``ENOSPC`` and with ``EIO``. Whatever fails, every record
whose ``write()`` returned is delivered, in the spool (and replayable) or
reported in an exception, ``records_pending`` is 0 after the block, no error
is anything but a ``PanoplyError``, and a later start on the same directories
delivers what was left. Records are reconciled by unique ids.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from diskfaults import FaultPlan, faults, ids_of, refuse, sample_calls
from panoply_async import SDK, DeliveryError, MemoryTransport, Message, PanoplyError
from panoply_async._durable.spool import read_spool, spool_files
from panoply_async.cli._run import StateFile
from panoply_async.errors import SpoolError, StateFileError
from panoply_async.testing import LocalQueue

ERRNOS = (errno.ENOSPC, errno.EIO)
#: the disk-full sweep runs on every interpreter, the I/O-error one on the main one
SWEEP_ERRNOS = [
    pytest.param(errno.ENOSPC, id="ENOSPC"),
    pytest.param(errno.EIO, id="EIO", marks=pytest.mark.main_only),
]


@dataclass
class Run:
    accepted: list[Any] = field(default_factory=list)
    errors: list[PanoplyError] = field(default_factory=list)
    pending: int = 0

    @property
    def reported(self) -> set[Any]:
        return {
            i for e in self.errors if isinstance(e, DeliveryError) for i in ids_of(e.bodies)
        }


async def write_records(conn: SDK, run: Run, prefix: str, count: int, pad: int) -> None:
    """Enter ``conn``, write ``count`` records (flushing now and then); errors kept."""
    try:
        async with conn:
            for i in range(count):
                record_id = f"{prefix}-{i}"
                try:
                    await conn.write("t", {"id": record_id, "pad": "x" * pad})
                except PanoplyError as exc:
                    run.errors.append(exc)
                else:
                    run.accepted.append(record_id)
                if i % 6 == 5:
                    await conn.flush()
                if i == 8:
                    await conn.sync()
    except PanoplyError as exc:
        run.errors.append(exc)
    run.pending = conn.stats.records_pending


# -- the write-ahead log -------------------------------------------------------------------


def wal_sdk(creds: tuple[str, str], wal_dir: Path, **options: Any) -> SDK:
    # Two frames a segment: a run rotates, retires and acknowledges several times.
    return SDK(*creds, wal_dir=wal_dir, max_message_bytes=2048, max_wal_bytes=8192, **options)


async def wal_case(
    creds: tuple[str, str], wal_dir: Path, plan: FaultPlan, prefix: str
) -> tuple[Run, list[Any]]:
    """A run that leaves records in the log (half its messages refused), then one
    under ``plan`` that recovers them and writes more, then a clean start; returns
    the faulted run (the records left counted as accepted) and every id delivered."""
    left = Run()
    requests = [0]

    def every_other(messages: Sequence[Message]) -> BaseException | None:
        requests[0] += 1
        return refuse(messages) if requests[0] % 2 else None

    # Every other message refused: segments keep frames next to acknowledged ones.
    first = MemoryTransport(fault=every_other)
    await write_records(wal_sdk(creds, wal_dir, transport=first), left, prefix + "L", 12, 600)
    assert left.reported  # kept in the log for the next start
    assert set(left.accepted) == set(ids_of(first.bodies)) | left.reported
    transport = MemoryTransport()
    run = Run(accepted=sorted(left.reported))
    with faults(plan):
        await write_records(wal_sdk(creds, wal_dir, transport=transport), run, prefix, 24, 600)
    later = MemoryTransport()
    async with wal_sdk(creds, wal_dir, transport=later):
        pass
    return run, ids_of(transport.bodies) + ids_of(later.bodies)


def check(run: Run, delivered: list[Any], what: str) -> None:
    assert run.pending == 0, what
    missing = set(run.accepted) - set(delivered)
    assert not missing, f"{what}: accepted and never delivered: {sorted(missing)}"


@pytest.mark.parametrize("error", SWEEP_ERRNOS)
async def test_every_call_of_the_log_failing(
    vector_credentials: tuple[str, str], tmp_path: Path, error: int
) -> None:
    counted = FaultPlan()
    run, delivered = await wal_case(vector_credentials, tmp_path / "count", counted, "c")
    check(run, delivered, "no fault")
    assert not run.errors
    calls = counted.calls
    operations = {op for op, _ in calls}
    assert {"open", "fallocate", "mmap", "write", "fdatasync", "unlink", "read_bytes"} <= operations
    for k in sample_calls(calls, per_site=2, limit=100):  # every call, while they are few
        plan = FaultPlan(fail_at=k, error=error)
        run, delivered = await wal_case(vector_credentials, tmp_path / str(k), plan, str(k))
        check(run, delivered, f"call {k} {calls[k - 1]} failing with {errno.errorcode[error]}")
        assert plan.failed  # the fault fired


# -- the spool -------------------------------------------------------------------------------


async def spool_case(
    creds: tuple[str, str], spool_dir: Path, plan: FaultPlan, prefix: str
) -> tuple[Run, list[Any]]:
    """A run whose every message is refused (so spooled) and a replay of the spool,
    both under ``plan``; then a clean replay. Returns the run and the ids spooled."""
    run = Run()
    with faults(plan):
        conn = SDK(*creds, transport=MemoryTransport(fault=refuse), spool_dir=spool_dir,
                   max_message_bytes=2048)
        await write_records(conn, run, prefix, 18, 600)
    spooled: list[Any] = []
    if spool_dir.exists():
        for path in spool_files(spool_dir):
            entries, invalid = read_spool(path)
            assert invalid == [], "a failed append left an unreadable line"
            spooled += ids_of(e.body for e in entries)
    missing = set(run.accepted) - set(spooled) - run.reported
    assert not missing, f"accepted, neither spooled nor reported: {sorted(missing)}"
    replayed = MemoryTransport()
    if spooled:
        async with SDK(*creds, transport=replayed, max_message_bytes=2048) as again:
            with faults(plan):
                try:
                    await again.replay(spool_dir)
                except SpoolError as exc:
                    run.errors.append(exc)
            result = await again.replay(spool_dir)  # space is back
        assert result.records_left == 0
        assert not list(spool_dir.glob("*.jsonl"))
    assert set(ids_of(replayed.bodies)) == set(spooled)  # everything spooled replays
    return run, spooled


@pytest.mark.parametrize("error", SWEEP_ERRNOS)
async def test_every_call_of_the_spool_failing(
    vector_credentials: tuple[str, str], tmp_path: Path, error: int
) -> None:
    counted = FaultPlan()
    run, spooled = await spool_case(vector_credentials, tmp_path / "count", counted, "c")
    assert sorted(spooled) == sorted(run.accepted)
    calls = counted.calls
    assert {"mkdir", "open", "rename", "write", "fsync", "replace"} <= {op for op, _ in calls}
    for k in range(1, len(calls) + 1):
        plan = FaultPlan(fail_at=k, error=error)
        run, _ = await spool_case(vector_credentials, tmp_path / str(k), plan, str(k))
        assert plan.failed
        assert run.pending == 0
        # the append that failed is in the DeliveryError, or replay said what failed
        assert run.reported or any(isinstance(e, SpoolError) for e in run.errors)


# -- the state file --------------------------------------------------------------------------


def save_states(path: Path, plan: FaultPlan) -> tuple[int, StateFileError | None]:
    """Save states 1..4 until one fails; returns the last state saved and the error."""
    state_file = StateFile(path)
    saved = 0
    with faults(plan):
        for n in range(1, 5):
            try:
                state_file.save(f"s{n}", {"cursor": n})
            except StateFileError as exc:
                return saved, exc
            saved = n
    return saved, None


def test_every_call_of_the_state_file_failing(tmp_path: Path) -> None:
    counted = FaultPlan()
    assert save_states(tmp_path / "count" / "state.json", counted) == (4, None)
    calls = counted.calls
    assert {"mkdir", "open", "write", "fsync", "replace"} <= {op for op, _ in calls}
    for error in ERRNOS:
        for k in range(1, len(calls) + 1):
            path = tmp_path / f"{error}-{k}" / "state.json"
            saved, failure = save_states(path, FaultPlan(fail_at=k, error=error))
            assert failure is not None
            assert os.strerror(error) in str(failure)
            if saved:
                assert json.loads(path.read_text())["state"] == {"cursor": saved}
            else:
                assert not path.exists()
            left = [p.name for p in path.parent.iterdir()] if path.parent.exists() else []
            assert left in ([], ["state.json"])  # no temporary file left behind
            StateFile(path).save("after", {"cursor": 0})  # space is back
            assert StateFile(path).load() == ("after", {"cursor": 0})


# -- against the local SQS server ------------------------------------------------------------


@pytest.mark.main_only
async def test_log_faults_against_the_local_server(
    panoply_queue: LocalQueue, tmp_path: Path
) -> None:
    creds = (panoply_queue.apikey, panoply_queue.apisecret)
    endpoint = panoply_queue.endpoint_url
    counted = FaultPlan()
    first = Run()
    with faults(counted):
        conn = wal_sdk(creds, tmp_path / "count", endpoint_url=endpoint,
                       spool_dir=tmp_path / "spool")
        await write_records(conn, first, "c", 24, 600)
    calls = counted.calls
    runs: list[Run] = [first]
    for k in sample_calls(calls, per_site=1, limit=0):
        run = Run()
        wal_dir = tmp_path / f"k{k}"
        with faults(FaultPlan(fail_at=k)):
            conn = wal_sdk(creds, wal_dir, endpoint_url=endpoint, spool_dir=tmp_path / "spool")
            await write_records(conn, run, f"k{k}", 24, 600)
        assert run.pending == 0
        async with wal_sdk(creds, wal_dir, endpoint_url=endpoint):
            pass
        runs.append(run)
    arrived = set(ids_of(m.body for m in await panoply_queue.amessages()))
    for run in runs:
        assert set(run.accepted) <= arrived


# -- a real small file system ----------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, where the tests run as root and ``mount`` works."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    target = tmp_path / "small"
    target.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(target)],
        capture_output=True, timeout=20, check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield target
    finally:
        done = subprocess.run(["umount", str(target)], capture_output=True, timeout=20,
                              check=False)
        if done.returncode != 0:  # still busy: detach it now, freed once unused
            subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=20,
                           check=False)


async def test_a_full_small_file_system(
    vector_credentials: tuple[str, str], small_fs: Path, tmp_path: Path
) -> None:
    # Nothing is delivered, so the log's segments stay and the spool grows until
    # the file system is full; then writes and appends fail.
    wal_dir, spool_dir = small_fs / "wal", small_fs / "spool"
    run = Run()
    conn = SDK(*vector_credentials, transport=MemoryTransport(fault=refuse),
               wal_dir=wal_dir, spool_dir=spool_dir, max_message_bytes=65_536,
               max_wal_bytes=4 * 1024 * 1024)
    await write_records(conn, run, "fs", 600, 4000)
    assert run.pending == 0
    assert any(isinstance(e, PanoplyError) for e in run.errors), "the disk never filled"
    assert shutil.disk_usage(small_fs).free < 300_000
    spooled: list[Any] = []
    for path in spool_files(spool_dir):
        entries, invalid = read_spool(path)
        assert invalid == []
        spooled += ids_of(e.body for e in entries)
    assert set(run.accepted) <= set(spooled) | run.reported
    # Space comes back: a later start delivers what the log kept, replay the spool.
    shutil.rmtree(spool_dir)
    later = MemoryTransport()
    async with SDK(*vector_credentials, transport=later, wal_dir=wal_dir,
                   max_message_bytes=65_536, max_wal_bytes=4 * 1024 * 1024):
        pass
    assert set(run.accepted) - set(spooled) <= set(ids_of(later.bodies))
