"""What the public listener does before a handler runs: whole bodies, timeouts, a connection cap.

aiohttp parses headers without a deadline and keeps idle connections for a long time, so a
client that sends one header byte every few seconds (slowloris) holds a connection for as
long as it likes. `ConnectionGuard` wraps each connection's protocol: a connection that is
not inside a request (still sending headers, or idle between keep-alive requests) for longer
than the header timeout is closed, and at the connection cap the one that has waited longest
without a request is dropped to make room. Bodies are read whole, under a deadline and a
size limit, without decompression: the stored bytes are the bytes the provider signed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web


class BodyTooLarge(Exception):
    """The body (declared or streamed) is longer than the limit."""


async def read_whole_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """Every byte of the body as sent (no content decoding), or BodyTooLarge / TimeoutError.

    `request.content.read(n)` returns what has arrived so far; this reads until the end of
    the body (Content-Length or the last chunk), checking the size as the bytes arrive."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)

    async with asyncio.timeout(timeout_s):
        await read()
    return b"".join(chunks)


def joined_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names; a repeated header keeps every value, in order, joined with ", "
    (RFC 9110 5.3: a recipient may combine repeated fields that way)."""
    joined: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


class _Connection:
    __slots__ = ("idle_since", "in_request", "transport")

    def __init__(self, transport: asyncio.BaseTransport, now: float) -> None:
        self.transport, self.idle_since, self.in_request = transport, now, False


class ConnectionGuard:
    def __init__(self, header_timeout_s: float, max_connections: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.header_timeout_s, self.max_connections, self.clock = (
            header_timeout_s, max_connections, clock)
        self._open: dict[int, _Connection] = {}
        self.cut = 0  # connections closed for waiting too long or to make room
        self.sweeper: asyncio.Task[None] | None = None

    def opened(self, transport: asyncio.BaseTransport) -> None:
        if len(self._open) >= self.max_connections:
            idle = [c for c in self._open.values() if not c.in_request]
            if not idle:
                transport.close()  # every slot is serving a request: refuse this one
                return
            self._cut(min(idle, key=lambda c: c.idle_since))
        self._open[id(transport)] = _Connection(transport, self.clock())

    def closed(self, transport: asyncio.BaseTransport) -> None:
        self._open.pop(id(transport), None)

    def request_started(self, transport: Any) -> None:
        connection = self._open.get(id(transport))
        if connection is not None:
            connection.in_request = True

    def request_finished(self, transport: Any) -> None:
        connection = self._open.get(id(transport))
        if connection is not None:
            connection.in_request, connection.idle_since = False, self.clock()

    def sweep(self) -> None:
        deadline = self.clock() - self.header_timeout_s
        for connection in list(self._open.values()):
            if not connection.in_request and connection.idle_since < deadline:
                self._cut(connection)

    def _cut(self, connection: _Connection) -> None:
        self._open.pop(id(connection.transport), None)
        self.cut += 1
        connection.transport.abort()  # type: ignore[attr-defined]

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(factory(), self)

    def middleware(self) -> Any:
        @web.middleware
        async def track(request: web.Request, handler: Any) -> web.StreamResponse:
            self.request_started(request.transport)
            try:
                return await handler(request)
            finally:
                self.request_finished(request.transport)
        return track

    async def sweep_forever(self, every_s: float = 0.5) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.sweep()


class _GuardedProtocol(asyncio.Protocol):
    """Delegates to aiohttp's protocol; tells the guard when the connection opens and closes."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self.inner, self.guard = inner, guard
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)
        self.guard.opened(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.guard.closed(self.transport)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
