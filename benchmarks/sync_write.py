"""CPU per record of ``SyncSDK.write()`` (1 and 8 writer threads) against ``await SDK.write()``,
and the first write after ``SyncSDK.start()`` against a warm write.

``python -m benchmarks.sync_write [--records N] [--repeats R]``. Both run on
``MemoryTransport(keep_bodies=False)``; the process CPU time counts every
thread (callers, engine, event loop). Each figure is the least of ``repeats``
runs, and the ratio compares runs of the same round, so load from other
processes shifts both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

import panoply_async
from panoply_async.local import make_credentials

from .records import KINDS, TABLE, Record, make_pool, take


def _credentials() -> tuple[str, str]:
    return make_credentials("bench")


async def _async_write(records: list[Record]) -> float:
    transport = panoply_async.MemoryTransport(keep_bodies=False)
    start = time.process_time()
    async with panoply_async.SDK(*_credentials(), transport=transport) as conn:
        for record in records:
            await conn.write(TABLE, record)
    return time.process_time() - start


def _sync_write(records: list[Record], threads: int) -> float:
    transport = panoply_async.MemoryTransport(keep_bodies=False)
    share = len(records) // threads
    start = time.process_time()
    with panoply_async.SyncSDK(*_credentials(), transport=transport) as conn:

        def work(part: list[Record]) -> None:
            write = conn.write
            for record in part:
                write(TABLE, record)

        workers = [
            threading.Thread(target=work, args=(records[n * share : (n + 1) * share],))
            for n in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    cpu = time.process_time() - start
    if conn.stats.records_delivered != share * threads:
        raise RuntimeError(f"SyncSDK delivered {conn.stats.records_delivered} records")
    return cpu


def _first_write_after_start(record: Record) -> tuple[float, float]:
    """Wall time of the first ``write()`` after ``start()`` and of a warm one (the
    median of 100 later ones, each after a flush(), so that each finds the engine
    idle as the first did): what a request pays in a worker that called start()
    in gunicorn's ``post_fork``, against what later requests pay."""
    transport = panoply_async.MemoryTransport(keep_bodies=False)
    with panoply_async.SyncSDK(*_credentials(), transport=transport) as conn:
        conn.start()
        start = time.perf_counter()
        conn.write(TABLE, record)
        first = time.perf_counter() - start
        warm = []
        for _ in range(100):
            conn.flush()
            start = time.perf_counter()
            conn.write(TABLE, record)
            warm.append(time.perf_counter() - start)
    return first, statistics.median(warm)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    for kind in KINDS:
        count = args.records if kind == "small" else args.records // 10
        records = take(make_pool(kind), count)
        base, one, eight = [], [], []
        for _ in range(args.repeats):
            base.append(asyncio.run(_async_write(records)))
            one.append(_sync_write(records, 1))
            eight.append(_sync_write(records, 8))

        us = [min(runs) / count * 1e6 for runs in (base, one, eight)]
        ratios = [
            statistics.median(s / b for s, b in zip(runs, base, strict=True))
            for runs in (one, eight)
        ]
        print(
            f"{kind}: SDK.write {us[0]:.2f} µs/record; SyncSDK.write 1 thread "
            f"{us[1]:.2f} µs ({ratios[0]:.2f}x), 8 threads {us[2]:.2f} µs ({ratios[1]:.2f}x)"
        )
    record = take(make_pool("small"), 1)[0]
    runs = [_first_write_after_start(record) for _ in range(args.repeats)]
    first = statistics.median(f for f, _ in runs) * 1e6
    warm = statistics.median(w for _, w in runs) * 1e6
    print(
        f"first SyncSDK.write after start(): {first:.1f} µs; a warm write {warm:.1f} µs "
        f"({first / warm:.1f}x)"
    )


if __name__ == "__main__":
    main()
