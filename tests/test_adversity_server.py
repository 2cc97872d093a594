"""Adversity for the receiving side: xmpp.testing.Server and Session.serve.

Peers that misbehave on purpose: one closes in the middle of a stanza, one
sends garbage after a valid header, one sends a 50 MB stanza, a thousand
open connections and stall in negotiation (slowloris), one never reads its
replies.  Each ends in the right stream error or a bounded timeout, the
process's memory stays bounded (measured from /proc), and a pair of real
clients keeps exchanging messages meanwhile.

The last test measures (and prints, without asserting) the memory of an
idle negotiated session and how many concurrent sessions one process holds
on loopback; the clients run in a child process so that the figures are
the server's alone.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest

from xmpp.client import dial_client_session
from xmpp.jid import JID
from xmpp.session import Session, SessionClosedError
from xmpp.stanza import Message, MessageType
from xmpp.stream import Condition, StreamError
from xmpp.testing import Server
from xmpp.xmlstream import Element, StartElement

TIMEOUT = 10.0
MB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """This process's resident set size in bytes, read from /proc/self/statm."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


class PeakRSS:
    """Samples the RSS every few milliseconds while in use; ``growth`` is the peak over the start."""

    def __init__(self) -> None:
        self.start = rss()
        self.peak = self.start
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss())
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> PeakRSS:
        self._task = asyncio.ensure_future(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait([self._task], timeout=1)
        self.peak = max(self.peak, rss())

    @property
    def growth(self) -> int:
        return self.peak - self.start


async def login(server: Server, user: str, resource: str) -> Session:
    return await dial_client_session(
        JID(user, server.domain, resource),
        "pw-" + user,
        host=server.host,
        port=server.port,
        tls_context=server.client_context(),
        timeout=TIMEOUT,
    )


class Pair:
    """Two real clients (alice and bob) that exchange messages through the server."""

    def __init__(self, a: Session, b: Session) -> None:
        self.a, self.b = a, b
        self.got: list[str] = []
        self.arrived = asyncio.Event()
        self.tasks = [asyncio.ensure_future(a.serve(None)), asyncio.ensure_future(b.serve(self._on))]

    def _on(self, el: Element, start: StartElement) -> None:
        if start.name.local == "message":
            self.got.append(start.get("id") or "")
            self.arrived.set()

    async def exchange(self, prefix: str, n: int) -> None:
        """Send ``n`` messages from alice to bob and wait (bounded) until bob has each."""
        to = self.b.local_addr
        ids = [f"{prefix}{i}" for i in range(n)]
        for i in ids:
            await self.a.send(Message(to=to, type=MessageType.CHAT, id=i))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT * 2
        while not set(ids) <= set(self.got):
            assert loop.time() < deadline, f"bob got {len(set(ids) & set(self.got))} of {n}"
            self.arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 1)

    async def close(self) -> None:
        for s in (self.a, self.b):
            with contextlib.suppress(Exception):
                await s.close(timeout=1)
        await asyncio.wait(self.tasks, timeout=3)
        for t in self.tasks:
            if t.done():
                t.exception()  # how each ended is not the point; leave no unretrieved error
            else:
                t.cancel()


@contextlib.asynccontextmanager
async def server_and_pair(**kw: object) -> AsyncIterator[tuple[Server, Pair]]:
    users = {"alice": "pw-alice", "bob": "pw-bob", "mallory": "pw-mallory", "u": "pw-u"}
    async with Server(users, **kw) as server:  # type: ignore[arg-type]
        pair = Pair(await login(server, "alice", "a"), await login(server, "bob", "b"))
        try:
            yield server, pair
        finally:
            await pair.close()


async def wait_until(cond: object, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------- the peers


async def test_peer_closing_mid_stanza_is_dropped_and_others_go_on() -> None:
    async with server_and_pair() as (server, pair):
        m = await login(server, "mallory", "m")
        jid = m.local_addr
        assert jid in server.sessions
        m.write_raw(b"<message to='bob@localhost' id='half'><body>hal")
        await asyncio.sleep(0.05)
        m.transport.abort()
        await wait_until(lambda: jid not in server.sessions)
        await pair.exchange("after-cut-", 20)
        assert "half" not in pair.got  # half a stanza is never delivered


async def test_garbage_after_a_valid_header_gets_not_well_formed() -> None:
    async with server_and_pair() as (server, pair):
        # Before TLS: a raw connection.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
            b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        )
        writer.write(b"<<garbage & more>>\x00\xff")
        data = await asyncio.wait_for(reader.read(), TIMEOUT)  # until the server closes
        writer.close()
        assert b"<not-well-formed" in data and data.rstrip().endswith(b"</stream:stream>")
        # After negotiation: an authenticated session turns to garbage.
        m = await login(server, "mallory", "m")
        task = asyncio.ensure_future(m.serve(None))
        m.write_raw(b"<message><body>ok</body></message><<<&&&")
        done, _ = await asyncio.wait([task], timeout=TIMEOUT)
        assert done
        exc = task.exception()
        assert isinstance(exc, StreamError) and exc.condition is Condition.NOT_WELL_FORMED
        await wait_until(lambda: m.local_addr not in server.sessions)
        await pair.exchange("after-garbage-", 20)


async def test_a_50_mb_stanza_is_a_policy_violation_in_bounded_memory() -> None:
    async with server_and_pair() as (server, pair):
        m = await login(server, "mallory", "m")
        task = asyncio.ensure_future(m.serve(None))
        chunk = b"x" * MB
        written = 0
        async with PeakRSS() as mem:
            m.write_raw(b"<message to='bob@localhost' id='huge'><body>")
            try:
                while written < 50 * MB and not m.transport.is_closing():
                    m.write_raw(chunk)
                    written += len(chunk)
                    await asyncio.wait_for(m.drain(), TIMEOUT)
                m.write_raw(b"</body></message>")
            except SessionClosedError:
                pass  # the server closed the stream: what we wanted
            done, _ = await asyncio.wait([task], timeout=TIMEOUT)
        assert done
        exc = task.exception()
        assert isinstance(exc, StreamError) and exc.condition is Condition.POLICY_VIOLATION
        assert written < 50 * MB, "the server should stop the stanza long before its end"
        print(f"\n50 MB stanza: refused after {written / MB:.0f} MB written; peak RSS growth {mem.growth / MB:.1f} MB")
        assert mem.growth < 100 * MB
        await wait_until(lambda: m.local_addr not in server.sessions)
        await pair.exchange("after-huge-", 20)
        assert "huge" not in pair.got


def _raise_fd_limit(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _Stalled(asyncio.Protocol):
    """A slowloris connection: half a stream header, then silence."""

    def __init__(self, lost: list[int]) -> None:
        self.lost = lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"<?xml version='1.0'?><stream:stream to='localhost' ")  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(1)


async def test_slowloris_thousand_stalled_connections_are_dropped_after_the_timeout() -> None:
    n = 1000
    assert _raise_fd_limit(4 * n + 256) >= 2 * n + 64
    async with server_and_pair(timeout=1.5) as (server, pair):
        loop = asyncio.get_running_loop()
        lost: list[int] = []
        transports: list[asyncio.BaseTransport] = []
        async with PeakRSS() as mem:
            for start in range(0, n, 100):  # in batches: the listen backlog is finite
                made = await asyncio.gather(
                    *(loop.create_connection(lambda: _Stalled(lost), server.host, server.port) for _ in range(100))
                )
                transports.extend(t for t, _ in made)
                await pair.exchange(f"during-{start}-", 5)  # the real pair goes on meanwhile
            assert len(transports) == n
            # Every stalled connection is dropped by the server's negotiation timeout.
            await wait_until(lambda: len(lost) == n, timeout=60)
        await pair.exchange("after-slowloris-", 50)
        print(f"\nslowloris: {n} stalled connections dropped; peak RSS growth {mem.growth / MB:.1f} MB")
        assert mem.growth < 100 * MB
        assert len(server.sessions) == 2  # only the real pair is bound


async def test_a_peer_that_never_reads_is_not_buffered_without_bound() -> None:
    async with server_and_pair(timeout=1.0) as (server, pair):
        m = await login(server, "mallory", "m")
        jid = m.local_addr
        assert jid is not None
        task = asyncio.ensure_future(m.serve(None))
        await asyncio.sleep(0)
        m.transport.pause_reading()  # never read a reply again
        server_side = server.sessions[jid]
        most_buffered = 0
        sent = 0
        ping = b"".join(
            b"<iq type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>" % i for i in range(1000)
        )
        async with PeakRSS() as mem:
            with contextlib.suppress(SessionClosedError, asyncio.TimeoutError, ConnectionError):
                while sent < 1_000_000 and not m.transport.is_closing():
                    m.write_raw(ping)
                    sent += 1000
                    most_buffered = max(most_buffered, server_side.transport.get_write_buffer_size())
                    await asyncio.wait_for(m.drain(), TIMEOUT)
                    await asyncio.sleep(0)
            # The server stops reading it (its answers wait) and then drops it.
            await wait_until(lambda: jid not in server.sessions, timeout=TIMEOUT)
        m.transport.abort()
        done, _ = await asyncio.wait([task], timeout=TIMEOUT)
        assert done and isinstance(task.exception(), SessionClosedError)
        print(
            f"\nnon-reader: {sent} pings written before the server pushed back; its write buffer "
            f"to the peer peaked at {most_buffered / 1024:.0f} KiB; peak RSS growth {mem.growth / MB:.1f} MB"
        )
        assert sent < 1_000_000, "the server should push back and drop it long before 60 MB of pings"
        assert most_buffered < 16 * MB
        assert mem.growth < 100 * MB
        await pair.exchange("after-nonreader-", 20)


# ---------------------------------------------------------------- the figures

_CHILD = textwrap.dedent(
    """
    import asyncio, resource, ssl, sys
    from xmpp.client import dial_client_session
    from xmpp.jid import JID

    async def main(host, port, ca, n):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n * 2 + 256), hard))
        except (ValueError, OSError):
            pass
        ctx = ssl.create_default_context(cafile=ca)
        sessions = []
        async def one(i):
            return await dial_client_session(JID("u", "localhost", "r%d" % i), "pw-u", host=host,
                                             port=port, tls_context=ctx, timeout=60)
        failed = 0
        for start in range(0, n, 50):
            got = await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))), return_exceptions=True)
            for g in got:
                if isinstance(g, BaseException):
                    failed += 1
                else:
                    sessions.append(g)
        print("READY", len(sessions), failed, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for s in sessions:
            s.transport.abort()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
    """
)


async def _hold(server: Server, n: int) -> tuple[int, int, int]:
    """Open ``n`` idle sessions from a child process; return (bound, failed, RSS growth)."""
    before = rss()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        server.host,
        str(server.port),
        server.ca_file,
        str(n),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 240)
        parts = line.split()
        assert parts and parts[0] == b"READY", line
        await asyncio.sleep(0.5)
        bound = len(server.sessions)
        growth = rss() - before
        return bound, int(parts[2]), growth
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.mark.slow
async def test_figures_memory_per_idle_session_and_concurrent_sessions() -> None:
    limit = _raise_fd_limit(2000 * 2 + 512)
    async with Server({"u": "pw-u"}, timeout=60.0) as server:
        bound, failed, growth = await _hold(server, 500)
        assert bound == 500 and failed == 0
        await wait_until(lambda: len(server.sessions) == 0, timeout=30)
        per = growth / bound
        bound2, failed2, growth2 = await _hold(server, 2000)
        await wait_until(lambda: len(server.sessions) == 0, timeout=60)
    print(
        f"\nfigures (server process only; clients in a child process; fd limit {limit}):"
        f"\n  idle negotiated session (TLS 1.3, SCRAM, bound): {per / 1024:.1f} KiB each "
        f"(RSS +{growth / MB:.1f} MB for 500; asyncio's SSLProtocol reserves a "
        f"{getattr(asyncio.sslproto.SSLProtocol, 'max_size', 0) // 1024} KiB read buffer per TLS connection, "
        f"zero-filled, so all of it resident)"
        f"\n  concurrent sessions held: {bound2} of 2000 asked ({failed2} failed to connect), "
        f"RSS +{growth2 / MB:.1f} MB ({growth2 / max(bound2, 1) / 1024:.1f} KiB each)"
    )
    assert bound2 > 0
