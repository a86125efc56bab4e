"""Ctrl-C and SIGTERM for the commands, the same on every Python version.

Python 3.10's ``asyncio.run`` turns SIGINT into ``KeyboardInterrupt`` raised
wherever the loop happens to be, and 3.11+ into a cancellation of the main
task; neither lets a command drain cleanly on every interpreter. So the
commands receive the signals themselves, inside the event loop: the first
cancels the work's scope (the SDK then drains within its shutdown deadline),
a second one calls ``on_again`` (which stops the drain at once).

A signal that the process inherited as *ignored* (a background job started by
a shell passes SIGINT down that way) stays ignored: such a process was told
not to react to it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

from .._engine.transport import Message, SendOutcome, SQSTransport, Transport
from .._version import __version__
from .._wire.credentials import parse_credentials
from ..errors import SendError

__all__ = ["Interrupt", "StoppableTransport", "Stopper", "run_interruptible"]


@dataclass
class Interrupt:
    """Which signals arrived while the work ran."""

    #: the first signal received (it started the drain), or None
    signum: int | None = None
    #: how many signals arrived
    count: int = 0

    @property
    def interrupted(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        if self.signum is None or self.signum == signal.SIGINT:
            return "Ctrl-C"
        return signal.Signals(self.signum).name


def handled_signals() -> list[signal.Signals]:
    """SIGINT and SIGTERM, except those the process inherited as ignored."""
    return [s for s in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(s) is not signal.SIG_IGN]


async def run_interruptible(
    work: Callable[[], Awaitable[object]],
    interrupt: Interrupt,
    *,
    on_first: Callable[[Interrupt], None] | None = None,
    on_again: Callable[[], None] | None = None,
) -> None:
    """Run ``work()``; the first SIGINT/SIGTERM cancels it (after calling
    ``on_first``), the next ones call ``on_again``.

    Returns normally when ``work`` was cancelled by a signal: ``interrupt`` says so.
    """
    signals = handled_signals()
    work_scope = anyio.CancelScope()

    async def watch(received: AsyncIterator[signal.Signals]) -> None:
        async for signum in received:
            interrupt.count += 1
            if interrupt.signum is None:
                interrupt.signum = int(signum)
                if on_first is not None:
                    on_first(interrupt)
                work_scope.cancel()
            elif on_again is not None:
                on_again()

    failure: BaseException | None = None
    with contextlib.ExitStack() as stack:
        async with anyio.create_task_group() as group:
            if signals:
                group.start_soon(watch, stack.enter_context(anyio.open_signal_receiver(*signals)))
            try:
                with work_scope:
                    await work()
            except anyio.get_cancelled_exc_class():
                raise
            except BaseException as exc:
                # Raised below, outside the task group, which would wrap it in a group.
                failure = exc
            finally:
                group.cancel_scope.cancel()
    if failure is not None:
        raise failure


class StoppableTransport:
    """A transport that a second interrupt can stop at once.

    After :meth:`stop`, requests in flight are abandoned and every send fails
    at once as not retryable, so the SDK spools what is left instead of
    waiting for its shutdown deadline.
    """

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self._stopped = False
        self._scopes: set[anyio.CancelScope] = set()

    async def open(self) -> None:
        await self._inner.open()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def stop(self) -> None:
        self._stopped = True
        for scope in tuple(self._scopes):
            scope.cancel()

    async def send(self, messages: Sequence[Message]) -> SendOutcome:
        if not self._stopped:
            with anyio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    return await self._inner.send(messages)
                finally:
                    self._scopes.discard(scope)
        raise SendError("not sent: stopped by a second interrupt", retryable=False,
                        code="Interrupted")


class Stopper:
    """Hands out the transports that a second interrupt stops."""

    def __init__(self) -> None:
        self._transports: list[StoppableTransport] = []
        self.stopped = False

    def transport(self, apikey: str, apisecret: str, endpoint_url: str | None,
                  inner: Transport | None = None) -> StoppableTransport:
        """``inner`` (default: the SQS transport the SDK would build), made stoppable."""
        if inner is None:
            credentials = parse_credentials(apikey, apisecret)
            inner = SQSTransport(
                credentials.queue_url(endpoint_url), credentials.region,
                {"key": credentials.apikey, "secret": credentials.apisecret,
                 "sdk": f"panoply-async-{__version__}"},
                endpoint_url=endpoint_url,
            )
        transport = StoppableTransport(inner)
        if self.stopped:
            transport.stop()
        self._transports.append(transport)
        return transport

    def stop(self) -> None:
        self.stopped = True
        for transport in self._transports:
            transport.stop()
