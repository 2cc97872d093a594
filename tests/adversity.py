"""A TCP fault-injection proxy for tests (after asyncpg's ``TCPFuzzingProxy``).

:class:`FaultProxy` listens on loopback and forwards each accepted
connection to a target (a real server), byte for byte, both ways.  It can
break what it forwards:

* **cut**: each new connection takes the next entry of ``cuts`` (a byte
  count, or ``None`` for no cut): after forwarding exactly that many bytes
  from the client to the server it aborts both sides, so a TLS record or a
  stanza may be cut anywhere;
* **stall**: :meth:`FaultProxy.stall` stops forwarding in both directions
  for a while (nothing is lost, the peers see silence);
* **delay**: every chunk waits ``delay`` seconds before it is forwarded.

Everything is bounded: at most ``max_connections`` connections are
accepted (later ones are closed at once), a stall or a delay never exceeds
``MAX_PAUSE`` seconds, and :meth:`FaultProxy.close` aborts whatever is open.
Only loopback addresses are used.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

__all__ = ["MAX_PAUSE", "FaultProxy"]

#: The longest one stall or one delay may last, in seconds.
MAX_PAUSE = 10.0


class _Link:
    """One proxied connection: the client's transport and the server's."""

    def __init__(self, proxy: FaultProxy, cut: int | None) -> None:
        self.proxy = proxy
        self.cut = cut
        self.up = 0  # client -> server bytes forwarded
        self.down = 0
        self.client: asyncio.Transport | None = None
        self.server: asyncio.Transport | None = None
        self.pending: dict[bool, list[bytes]] = {True: [], False: []}  # per direction, in order
        self.closed = False
        self.was_cut = False

    def abort(self) -> None:
        self.closed = True
        for t in (self.client, self.server):
            if t is not None:
                t.abort()


class _Side(asyncio.Protocol):
    def __init__(self, link: _Link, upstream: bool) -> None:
        self.link = link
        self.upstream = upstream  # True: this side is the client's; its data goes to the server

    def data_received(self, data: bytes) -> None:
        link = self.link
        if link.closed:
            return
        if self.upstream and link.cut is not None and link.up + len(data) >= link.cut:
            data = data[: link.cut - link.up]
            link.was_cut = True
            self.link.proxy._forward(link, True, data, then_cut=True)
            return
        self.link.proxy._forward(link, self.upstream, data)

    def connection_lost(self, exc: Exception | None) -> None:
        link = self.link
        other = link.server if self.upstream else link.client
        if other is not None and not other.is_closing():
            other.close()
        link.closed = True


class FaultProxy:
    """A loopback TCP proxy to ``(host, port)`` that cuts, stalls or delays.

    ``cuts`` gives, for each new connection in order, the number of
    client-to-server bytes after which it is cut (``None``: never); once
    the list is used up connections are not cut.  Use it as an async
    context manager; :attr:`port` is where to connect.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        cuts: Iterable[int | None] = (),
        delay: float = 0.0,
        max_connections: int = 64,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the proxy only forwards to loopback")
        self.host, self.target_port = host, port
        self.cuts = list(cuts)
        self.delay = min(max(0.0, delay), MAX_PAUSE)
        self.max_connections = max_connections
        self.links: list[_Link] = []
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._stalled: asyncio.Event = asyncio.Event()
        self._stalled.set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def cut_count(self) -> int:
        """How many connections were cut so far."""
        return sum(1 for link in self.links if link.was_cut)

    async def __aenter__(self) -> FaultProxy:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept_protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and abort every open connection."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for link in self.links:
            link.abort()
        for t in list(self._tasks):
            t.cancel()

    def stall(self, seconds: float) -> None:
        """Forward nothing, either way, for ``seconds`` (at most :data:`MAX_PAUSE`)."""
        self._stalled.clear()
        asyncio.get_running_loop().call_later(min(max(0.0, seconds), MAX_PAUSE), self._stalled.set)

    def cut_all(self) -> None:
        """Abort every open connection now."""
        for link in self.links:
            if not link.closed:
                link.was_cut = True
                link.abort()

    # ------------------------------------------------------------ plumbing

    def _accept_protocol(self) -> asyncio.Protocol:
        if len(self.links) >= self.max_connections:
            return _Refuse()
        cut = self.cuts[len(self.links)] if len(self.links) < len(self.cuts) else None
        link = _Link(self, cut)
        self.links.append(link)
        return _Accepted(link)

    def _forward(self, link: _Link, upstream: bool, data: bytes, *, then_cut: bool = False) -> None:
        pending = link.pending[upstream]
        if not self._stalled.is_set() or self.delay or pending:
            pending.append(data)
            task = asyncio.ensure_future(self._later(link, upstream, then_cut))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._write(link, upstream, data)
        if then_cut:
            link.abort()

    async def _later(self, link: _Link, upstream: bool, then_cut: bool) -> None:
        await asyncio.wait_for(self._stalled.wait(), MAX_PAUSE + 1)
        if self.delay:
            await asyncio.sleep(self.delay)
        pending = link.pending[upstream]
        if pending:
            self._write(link, upstream, pending.pop(0))
        if then_cut:
            link.abort()

    def _write(self, link: _Link, upstream: bool, data: bytes) -> None:
        target = link.server if upstream else link.client
        if target is None or target.is_closing() or not data:
            return
        target.write(data)
        if upstream:
            link.up += len(data)
        else:
            link.down += len(data)


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _Accepted(_Side):
    """The client's side of a link: connects to the target when accepted."""

    def __init__(self, link: _Link) -> None:
        super().__init__(link, True)
        self._early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.link.client = transport  # type: ignore[assignment]
        transport.pause_reading()  # type: ignore[attr-defined]
        task = asyncio.ensure_future(self._dial())
        self.link.proxy._tasks.add(task)
        task.add_done_callback(self.link.proxy._tasks.discard)

    async def _dial(self) -> None:
        link = self.link
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: _Side(link, False), link.proxy.host, link.proxy.target_port), 10
            )
        except (OSError, asyncio.TimeoutError):
            link.abort()
            return
        link.server = transport
        if link.closed:
            transport.abort()
            return
        assert link.client is not None
        link.client.resume_reading()
