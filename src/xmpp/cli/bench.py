"""``python -m xmpp bench``: how fast this library moves stanzas, end to end.

With no arguments it starts the embedded :class:`xmpp.testing.Server` on
127.0.0.1 (a port the system picks), logs in a sender and a receiver with
full negotiation (STARTTLS, SASL SCRAM, resource binding) through
:func:`xmpp.client.dial_client_session`, and then, in this order:

1. **Messages.**  The sender sends ``--messages`` chat messages, each with a
   ``--size``-byte body, to the receiver's full JID; the server routes them.
   The sender awaits ``send_message`` per message (so it waits whenever the
   socket is full); the receiver serves a :class:`xmpp.mux.ServeMux` whose
   message handler reads the body and counts.  The rate runs from the first
   send until the last message was counted.  Messages that never arrive (no
   progress for ``--timeout`` seconds) are reported as lost.
2. **IQ pings.**  The sender sends ``--iq`` XEP-0199 pings, ``--inflight``
   of them in flight at any time, to the server (or, ``--iq-to peer``, to
   the receiver, which answers them); each round trip is timed.

Everything runs in this one process and on one event loop (the embedded
server too), so the CPU seconds shown are those of the whole path: two
clients and the server.  ``--clients N`` runs N such pairs at once (the
totals are split between them).  ``--compare slixmpp`` runs the identical
scenario again with two ``slixmpp.ClientXMPP`` per pair against the same
server, and shows both side by side.  ``--server HOST[:PORT] --jid JID``
runs it against a real server (``--jid2`` for the receiver's account,
else two resources of the same account).

``--component`` benches the component path (XEP-0114) instead: the
embedded server also listens on a component port, and each pair is a
component (:func:`xmpp.component.dial_session`, domain
``component.localhost``, or ``c<i>.component.localhost`` with several
pairs) and a logged-in user.  The component floods ``--messages`` messages
to the user's full JID, then the user floods as many to an address at the
component's domain, then the component sends the ``--iq`` pings (to the
server, or ``--iq-to peer`` to the user).  ``--compare slixmpp`` does the
same with ``slixmpp.ComponentXMPP`` and a ``slixmpp.ClientXMPP`` user.
Against a real server: ``--server HOST[:PORT] --component DOMAIN --jid
JID``, the component connecting to ``--component-port`` (default 5347) of
the same host with the secret from ``$XMPP_COMPONENT_SECRET`` or
``--component-secret-file`` (mode 600), the user logging in with
``$XMPP_PASSWORD`` or ``--password-file``.

The display is a progress bar on stderr (``rich``, the ``cli`` extra; a
plain line without it) and a one-screen table on stdout, or only JSON
with ``--json``.  ``--plot FILE.png`` draws throughput over time from
samples taken every 100 ms (``matplotlib``, the ``plot`` extra).  Every
session, task and the listening socket are closed before the command
returns, whatever happened.  Exit status: 0, or 1 when stanzas were lost,
pings failed or a compared library failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import platform
import re
import secrets
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from xmpp.cli import common
from xmpp.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CLIError
from xmpp.cli.progress import Progress, make_progress, rich_available

__all__ = ["Scenario", "add_arguments", "plot", "render_text", "run"]

NS_PING = "urn:xmpp:ping"
#: Seconds between two throughput samples.
SAMPLE_INTERVAL = 0.1
#: The usual component port of XMPP servers (XEP-0114).
DEFAULT_COMPONENT_PORT = 5347
#: The component domain of the embedded scenario.
DEFAULT_COMPONENT_DOMAIN = "component.localhost"
#: The local part of the address at the component's domain that users write to.
COMPONENT_USER = "bench"
_FILLER = (
    "Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike. "
    "How camest thou hither, tell me, and wherefore? "
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``bench`` to its parser."""
    g = p.add_argument_group("scenario")
    g.add_argument("--messages", type=int, default=50_000, metavar="N",
                   help="messages to send in total, split between the pairs (default 50,000)")
    g.add_argument("--size", type=int, default=100, metavar="BYTES",
                   help="bytes of each message body (default 100)")
    g.add_argument("--clients", type=int, default=1, metavar="N",
                   help="sender/receiver pairs running at once (default 1)")
    g.add_argument("--iq", type=int, default=20_000, metavar="N",
                   help="IQ pings in total, split between the pairs (default 20,000)")
    g.add_argument("--inflight", type=int, default=64, metavar="N",
                   help="pings in flight per pair (default 64)")
    g.add_argument("--iq-to", choices=("server", "peer"), default="server",
                   help="ping the server, or the receiving client through the server (default server)")
    g.add_argument("--compare", choices=("slixmpp",), default=None,
                   help="run the identical scenario with slixmpp too and show both")
    g.add_argument("--component", nargs="?", const="", default=None, metavar="DOMAIN",
                   help="bench the component path (XEP-0114): a component floods a user, the "
                   "user floods the component, the component pings; DOMAIN is the component's "
                   "domain (needed with --server; default component.localhost)")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print only the results, as JSON, on stdout")
    o.add_argument("--plot", metavar="FILE.png",
                   help="draw throughput over time (100 ms samples) into FILE.png (extra: plot)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s = p.add_argument_group("a real server instead of the embedded one")
    s.add_argument("--server", metavar="HOST[:PORT]",
                   help="run against this server (needs --jid and a password)")
    s.add_argument("--jid2", metavar="JID",
                   help="the receiver's account (default: a second resource of --jid)")
    s.add_argument("--password2-file", metavar="FILE",
                   help="the password of --jid2 (default: $XMPP_PASSWORD2, else the first password)")
    s.add_argument("--component-port", type=int, default=DEFAULT_COMPONENT_PORT, metavar="PORT",
                   help="with --component: the server's component port, on the host of --server "
                   f"(default {DEFAULT_COMPONENT_PORT})")
    s.add_argument("--component-secret-file", metavar="FILE",
                   help="with --component: the component's secret (mode 600 or stricter); "
                   f"default: ${common.COMPONENT_SECRET_ENV}")
    common.add_connection_options(p, bench=True)


# ---------------------------------------------------------------------------
# The scenario


@dataclasses.dataclass
class Account:
    """One client of a pair: its full JID (resource included) and password."""

    jid: Any
    password: str


@dataclasses.dataclass
class Scenario:
    """Everything a run of one library needs, the same for every library."""

    messages: int
    size: int
    clients: int
    iq: int
    inflight: int
    iq_to: str
    timeout: float
    host: str
    port: int
    domain: str
    direct_tls: bool
    context: ssl.SSLContext | None
    mechanisms: Any
    #: ``(sender, receiver)`` per pair.
    pairs: list[tuple[Account, Account]]
    #: ``embedded`` or ``external``.
    kind: str
    #: True for the component path: each pair is ``(component, user)``,
    #: the component's :class:`Account` being its domain and secret.
    component: bool = False
    #: The server's component port (with ``component``).
    component_port: int = 0

    @property
    def text(self) -> str:
        """The body of every message: ``size`` ASCII characters."""
        return (_FILLER * (self.size // len(_FILLER) + 1))[: self.size]


def split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` shares that differ by at most one."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of sorted values, or None."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def message_bytes(sender: Any, receiver: Any, text: str) -> int:
    """The size of one benchmark message as this library writes it (the ``from``
    the server adds included)."""
    from xmpp.stanza import Message, MessageType
    from xmpp.stream import NS_CLIENT
    from xmpp.xmlstream import CharData, Encoder, Name, StartElement

    body = StartElement(Name(NS_CLIENT, "body"))
    msg = Message(to=receiver, from_=sender, id="0" * 16, type=MessageType.CHAT)
    enc = Encoder(ns=NS_CLIENT)
    enc.encode(msg.wrap((body, CharData(text), body.end()), NS_CLIENT))
    return len(enc.flush())


# ---------------------------------------------------------------------------
# One library's run


@dataclasses.dataclass
class Result:
    """What one library achieved in one run (``as_dict`` is the JSON form)."""

    name: str
    version: str
    sent: int = 0
    received: int = 0
    bad: int = 0
    msg_bytes: int = 0
    flood_seconds: float = 0.0
    iq_ok: int = 0
    iq_failed: int = 0
    iq_seconds: float = 0.0
    latencies: list[float] = dataclasses.field(default_factory=list)
    connect_seconds: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    tls: str | None = None
    sasl: str | None = None
    error: str | None = None
    samples: list[tuple[float, str, int]] = dataclasses.field(default_factory=list)
    #: The second direction of the component path (user to component), or
    #: None for the client scenario.
    inbound: Flood | None = None

    @property
    def lost(self) -> int:
        """Messages sent but not received."""
        return max(0, self.sent - self.received)

    @property
    def ok(self) -> bool:
        """True when nothing failed, nothing was lost and nothing was damaged."""
        inbound_ok = self.inbound is None or (self.inbound.lost == 0 and self.inbound.bad == 0)
        return (
            self.error is None and self.lost == 0 and self.bad == 0 and self.iq_failed == 0
            and inbound_ok
        )

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON data."""
        lat = sorted(self.latencies)

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 4)

        fs, iqs = self.flood_seconds, self.iq_seconds
        out = {
            "name": self.name,
            "version": self.version,
            "ok": self.ok,
            "error": self.error,
            "tls": self.tls,
            "sasl": self.sasl,
            "messages_sent": self.sent,
            "messages_received": self.received,
            "messages_lost": self.lost,
            "messages_damaged": self.bad,
            "message_bytes": self.msg_bytes,
            "flood_seconds": round(fs, 6),
            "stanzas_per_second": round(self.received / fs, 1) if fs > 0 else None,
            "megabytes_per_second": round(self.received * self.msg_bytes / fs / 1e6, 3) if fs > 0 else None,
            "iq_ok": self.iq_ok,
            "iq_failed": self.iq_failed,
            "iq_seconds": round(iqs, 6),
            "iq_per_second": round((self.iq_ok + self.iq_failed) / iqs, 1) if iqs > 0 else None,
            "iq_latency_ms": {
                "p50": ms(percentile(lat, 0.50)),
                "p99": ms(percentile(lat, 0.99)),
                "max": ms(lat[-1] if lat else None),
            },
            "connect_seconds": round(self.connect_seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "samples": [[round(t, 4), ph, c] for t, ph, c in self.samples],
        }
        if self.inbound is not None:
            out["inbound"] = self.inbound.as_dict()
        return out


@dataclasses.dataclass
class Flood:
    """One direction of messages: how many went, how many arrived, how fast."""

    sent: int = 0
    received: int = 0
    bad: int = 0
    msg_bytes: int = 0
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        """Messages sent but not received."""
        return max(0, self.sent - self.received)

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain JSON data (the keys of :meth:`Result.as_dict`)."""
        fs = self.seconds
        return {
            "messages_sent": self.sent,
            "messages_received": self.received,
            "messages_lost": self.lost,
            "messages_damaged": self.bad,
            "message_bytes": self.msg_bytes,
            "flood_seconds": round(fs, 6),
            "stanzas_per_second": round(self.received / fs, 1) if fs > 0 else None,
            "megabytes_per_second": round(self.received * self.msg_bytes / fs / 1e6, 3) if fs > 0 else None,
        }


class _Sampler:
    """Every 100 ms: the cumulative count of the current phase, for the plot
    and the progress bar."""

    def __init__(self, progress: Progress, result: Result, t0: float) -> None:
        self.progress = progress
        self.result = result
        self.t0 = t0
        self.phase = ""
        self.count: Callable[[], int] | None = None

    def start(self, phase: str, description: str, total: int, count: Callable[[], int]) -> None:
        self.tick()
        self.phase, self.count = phase, count
        self.progress.phase(description, total)
        self.tick()

    def tick(self) -> None:
        if self.count is None:
            return
        c = self.count()
        self.result.samples.append((time.perf_counter() - self.t0, self.phase, c))
        self.progress.update(c)

    def stop(self) -> None:
        self.tick()
        self.count = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.tick()


class _OursPair:
    """A sender and a receiver session of this library."""

    name = "xmpp"

    def __init__(self, sc: Scenario, index: int) -> None:
        self.sc = sc
        self.index = index
        self.sender: Any = None
        self.receiver: Any = None
        self.tasks: list[asyncio.Task[None]] = []
        self.received = 0
        self.bad = 0
        self.target = 0
        self.t_last = 0.0
        self.iq_ok = 0
        self.iq_failed = 0
        self.latencies: list[float] = []
        self.all_in: asyncio.Future[None] | None = None
        self.sasl: str | None = None

    async def _dial(self, acc: Account, tee_out: Callable[[bytes], object] | None = None) -> Any:
        from xmpp.client import dial_client_session

        sc = self.sc
        return await dial_client_session(
            acc.jid, acc.password, tls_context=sc.context, host=sc.host, port=sc.port,
            direct_tls=True if sc.direct_tls else None, timeout=sc.timeout,
            mechanisms=sc.mechanisms, tee_out=tee_out,
        )

    async def connect(self) -> None:
        """Log both in, serve both, and have the server answer a ping from each."""
        from xmpp.mux import ServeMux
        from xmpp.stanza import IQType, Presence
        from xmpp.stream import NS_CLIENT
        from xmpp.xmlstream import Name

        sender_acc, receiver_acc = self.sc.pairs[self.index]
        spy = _AuthSpy() if self.index == 0 else None
        self.receiver = await self._dial(receiver_acc, spy)
        self.sasl = spy.mechanism if spy is not None else None
        self.sender = await self._dial(sender_acc)
        rmux = ServeMux(NS_CLIENT)
        rmux.message_func(None, None, self._on_message)
        rmux.iq_func(IQType.GET, Name(NS_PING, "ping"), self._pong)
        self.tasks.append(asyncio.ensure_future(self.receiver.serve(rmux)))
        self.tasks.append(asyncio.ensure_future(self.sender.serve(ServeMux(NS_CLIENT))))
        await asyncio.sleep(0)  # serve must run before send_iq
        await self.receiver.send_presence(Presence())
        for s in (self.receiver, self.sender):
            await self._ping(s, None)

    @property
    def tls(self) -> str | None:
        """The TLS version and cipher of the receiver's connection."""
        obj = self.receiver.tls if self.receiver is not None else None
        if obj is None:
            return None
        cipher = obj.cipher()
        return f"{obj.version()} {cipher[0]}" if cipher else str(obj.version())

    def _on_message(self, msg: Any, el: Any, session: Any) -> None:
        body = el.find("body")
        if body is None or len(body.text) != self.sc.size:
            self.bad += 1
        self.received += 1
        if self.received >= self.target and self.all_in is not None and not self.all_in.done():
            self.t_last = time.perf_counter()
            self.all_in.set_result(None)

    async def _pong(self, iq: Any, el: Any, session: Any) -> None:
        await session.send(iq.result())

    async def _ping(self, s: Any, to: Any) -> None:
        from xmpp.jid import JID
        from xmpp.stanza import IQ, IQType
        from xmpp.xmlstream import Name, StartElement

        ping = StartElement(Name(NS_PING, "ping"))
        await s.send_iq(
            IQ(to=to if to is not None else JID.parse(self.sc.domain), type=IQType.GET),
            (ping, ping.end()),
            timeout=self.sc.timeout,
        )

    def expect(self, n: int) -> None:
        """Count the next ``n`` messages."""
        self.received = 0
        self.target = n
        self.all_in = asyncio.get_running_loop().create_future()
        if n == 0:
            self.all_in.set_result(None)
            self.t_last = time.perf_counter()

    async def flood(self, n: int) -> None:
        """Send ``n`` messages to the receiver, awaiting each send."""
        from xmpp.stanza import Message, MessageType
        from xmpp.stream import NS_CLIENT
        from xmpp.xmlstream import CharData, Name, StartElement

        body = StartElement(Name(NS_CLIENT, "body"))
        payload = (body, CharData(self.sc.text), body.end())
        to = self.receiver.local_addr
        chat = MessageType.CHAT
        send_message = self.sender.send_message
        for _ in range(n):
            await send_message(Message(to=to, type=chat), payload)
        await self.sender.drain()

    def failed(self) -> BaseException | None:
        """The error of a serve task that ended, if any."""
        for t in self.tasks:
            if t.done():
                if t.cancelled():
                    return RuntimeError("a serve task was cancelled")
                exc = t.exception()
                from xmpp.session import SessionClosedError

                return exc if exc is not None else SessionClosedError("the server closed the stream")
        return None

    async def pings(self, n: int, inflight: int) -> None:
        """``n`` pings, ``inflight`` at a time, each round trip timed."""
        from xmpp.jid import JID
        from xmpp.stanza import IQ, IQType, StanzaError
        from xmpp.xmlstream import Name, StartElement

        s = self.sender
        to = self.receiver.local_addr if self.sc.iq_to == "peer" else JID.parse(self.sc.domain)
        ping = StartElement(Name(NS_PING, "ping"))
        payload = (ping, ping.end())
        get = IQType.GET
        timeout = self.sc.timeout

        def one() -> Awaitable[Any]:
            reply: Awaitable[Any] = s.send_iq(IQ(to=to, type=get), payload, timeout=timeout)
            return reply

        await _round_trips(self, n, inflight, one, (StanzaError, TimeoutError))

    async def close(self) -> None:
        """Close both sessions (bounded) and end their serve tasks."""
        for s in (self.sender, self.receiver):
            if s is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(s.close(timeout=2.0), 5.0)
        await _finish(self.tasks)


class _AuthSpy:
    """A ``tee_out`` that notes the SASL mechanism of the ``<auth/>`` written."""

    def __init__(self) -> None:
        self.mechanism: str | None = None

    def __call__(self, data: bytes) -> None:
        if self.mechanism is None and data.startswith(b"<auth"):
            m = re.search(rb"mechanism=[\"']([A-Za-z0-9_-]+)", data)
            if m:
                self.mechanism = m.group(1).decode("ascii")


class _SlixPair:
    """A sender and a receiver ``slixmpp.ClientXMPP``."""

    name = "slixmpp"

    def __init__(self, sc: Scenario, index: int) -> None:
        self.sc = sc
        self.index = index
        self.sender: Any = None
        self.receiver: Any = None
        self.received = 0
        self.bad = 0
        self.target = 0
        self.t_last = 0.0
        self.iq_ok = 0
        self.iq_failed = 0
        self.latencies: list[float] = []
        self.all_in: asyncio.Future[None] | None = None
        self.sasl: str | None = None
        self.tls: str | None = None
        self._lost: asyncio.Future[None] | None = None

    async def _client(self, acc: Account) -> Any:
        import slixmpp

        from xmpp.sasl import SASLError

        sc = self.sc
        jid = acc.jid.bare().with_resource(f"slixmpp-{acc.jid.resource}") if acc.jid.resource else acc.jid
        x = slixmpp.ClientXMPP(str(jid), acc.password)
        x.enable_direct_tls = sc.direct_tls
        x.enable_starttls = not sc.direct_tls
        if sc.context is not None:
            x.ssl_context = sc.context
        x.register_plugin("xep_0199")
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        if self._lost is None:
            self._lost = loop.create_future()
        lost = self._lost

        def on_start(_: Any) -> None:
            if not started.done():
                started.set_result(None)

        def on_auth_failed(_: Any) -> None:
            if not started.done():
                started.set_exception(SASLError("not-authorized", "slixmpp could not log in"))

        def on_conn_failed(ev: Any) -> None:
            if not started.done():
                started.set_exception(ConnectionError(f"slixmpp could not connect: {ev}"))

        def on_disconnected(_: Any) -> None:
            if started.done() and not lost.done():
                lost.set_result(None)

        x.add_event_handler("session_start", on_start)
        x.add_event_handler("failed_all_auth", on_auth_failed)
        x.add_event_handler("connection_failed", on_conn_failed)
        x.add_event_handler("disconnected", on_disconnected)
        if self.sender is None and self.receiver is None:
            self.receiver = x
        else:
            self.sender = x
        x.connect(sc.host, sc.port)
        await asyncio.wait_for(started, sc.timeout)
        return x

    async def connect(self) -> None:
        """Log both in, send the receiver's presence, ping the server from each."""
        sender_acc, receiver_acc = self.sc.pairs[self.index]
        r = await self._client(receiver_acc)
        r.add_event_handler("message", self._on_message)
        await self._client(sender_acc)
        r.send_presence()
        for x in (self.receiver, self.sender):
            await x.plugin["xep_0199"].send_ping(self.sc.domain, timeout=self.sc.timeout)
        with contextlib.suppress(Exception):
            obj = r.transport.get_extra_info("ssl_object")
            self.tls = f"{obj.version()} {obj.cipher()[0]}"

    def _on_message(self, msg: Any) -> None:
        if len(msg["body"]) != self.sc.size:
            self.bad += 1
        self.received += 1
        if self.received >= self.target and self.all_in is not None and not self.all_in.done():
            self.t_last = time.perf_counter()
            self.all_in.set_result(None)

    def expect(self, n: int) -> None:
        """Count the next ``n`` messages."""
        self.received = 0
        self.target = n
        self.all_in = asyncio.get_running_loop().create_future()
        if n == 0:
            self.all_in.set_result(None)
            self.t_last = time.perf_counter()

    async def flood(self, n: int) -> None:
        """``send_message`` for each message, yielding to the loop every 100."""
        send_message = self.sender.send_message
        to = str(self.receiver.boundjid.full)
        text = self.sc.text
        for i in range(n):
            send_message(mto=to, mbody=text, mtype="chat")
            if i % 100 == 99:
                await asyncio.sleep(0)

    def failed(self) -> BaseException | None:
        """An error when a client was disconnected."""
        if self._lost is not None and self._lost.done():
            return ConnectionError("slixmpp was disconnected")
        return None

    async def pings(self, n: int, inflight: int) -> None:
        """``n`` pings with ``send_ping``, ``inflight`` at a time."""
        from slixmpp.exceptions import IqError, IqTimeout

        send_ping = self.sender.plugin["xep_0199"].send_ping
        to = str(self.receiver.boundjid.full) if self.sc.iq_to == "peer" else self.sc.domain
        timeout = self.sc.timeout

        def one() -> Awaitable[Any]:
            return send_ping(to, timeout=timeout)  # type: ignore[no-any-return]

        await _round_trips(self, n, inflight, one, (IqError, IqTimeout))

    async def close(self) -> None:
        """Disconnect both (bounded)."""
        for x in (self.sender, self.receiver):
            if x is None:
                continue
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(x.disconnect(wait=1.0), 5.0)
            with contextlib.suppress(BaseException):
                x.abort()


class _OursComponentPair(_OursPair):
    """A component (:func:`xmpp.component.dial_session`) and a logged-in user.

    ``sender`` is the component's session and ``receiver`` the user's, so
    that :meth:`flood` (component to user) and the pings (from the
    component) are those of the client pair; :meth:`flood_in` is the other
    direction.  Both ends count what they receive in the same counters.
    """

    async def connect(self) -> None:
        """Connect the component, log the user in, serve both, have the server
        answer a ping from each."""
        from xmpp.component import dial_session
        from xmpp.mux import ServeMux
        from xmpp.stanza import IQType
        from xmpp.stream import NS_CLIENT, NS_COMPONENT
        from xmpp.xmlstream import Name

        comp_acc, user_acc = self.sc.pairs[self.index]
        spy = _AuthSpy() if self.index == 0 else None
        self.receiver = await self._dial(user_acc, spy)
        self.sasl = spy.mechanism if spy is not None else None
        self.sender = await dial_session(
            comp_acc.jid, comp_acc.password, self.sc.host, self.sc.component_port,
            timeout=self.sc.timeout,
        )
        umux = ServeMux(NS_CLIENT)
        umux.message_func(None, None, self._on_message)
        umux.iq_func(IQType.GET, Name(NS_PING, "ping"), self._pong)
        cmux = ServeMux(NS_COMPONENT)
        cmux.message_func(None, None, self._on_message)
        cmux.iq_func(IQType.GET, Name(NS_PING, "ping"), self._pong)
        self.tasks.append(asyncio.ensure_future(self.receiver.serve(umux)))
        self.tasks.append(asyncio.ensure_future(self.sender.serve(cmux)))
        await asyncio.sleep(0)  # serve must run before send_iq
        for s in (self.receiver, self.sender):
            await self._ping(s, None)

    async def _pong(self, iq: Any, el: Any, session: Any) -> None:
        await session.send(iq.result(ns=session.stanza_ns))

    async def flood(self, n: int) -> None:
        """The component sends ``n`` messages to the user's full JID (the
        component session adds ``from``), awaiting each send."""
        from xmpp.stream import NS_COMPONENT

        await self._flood(self.sender, self.receiver.local_addr, NS_COMPONENT, n)

    async def flood_in(self, n: int) -> None:
        """The user sends ``n`` messages to an address at the component's domain."""
        from xmpp.stream import NS_CLIENT

        to = component_address(self.sc.pairs[self.index][0].jid.domain)
        await self._flood(self.receiver, to, NS_CLIENT, n)

    async def _flood(self, s: Any, to: Any, ns: str, n: int) -> None:
        from xmpp.stanza import Message, MessageType
        from xmpp.xmlstream import CharData, Name, StartElement

        body = StartElement(Name(ns, "body"))
        payload = (body, CharData(self.sc.text), body.end())
        chat = MessageType.CHAT
        send_message = s.send_message
        for _ in range(n):
            await send_message(Message(to=to, type=chat), payload)
        await s.drain()


class _SlixComponentPair(_SlixPair):
    """A ``slixmpp.ComponentXMPP`` and a ``slixmpp.ClientXMPP`` user."""

    #: The component's domain (its messages' and pings' ``from``).
    domain = ""

    async def connect(self) -> None:
        """Log the user in, connect the component, have the server answer a
        ping from each."""
        import slixmpp

        sc = self.sc
        comp_acc, user_acc = sc.pairs[self.index]
        u = await self._client(user_acc)  # becomes self.receiver
        u.add_event_handler("message", self._on_message)
        self.domain = str(comp_acc.jid)
        component_cls: Any = slixmpp.ComponentXMPP  # untyped in slixmpp
        x: Any = component_cls(self.domain, comp_acc.password, sc.host, sc.component_port)
        x.register_plugin("xep_0199")
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        lost = self._lost
        assert lost is not None

        def on_start(_: Any) -> None:
            if not started.done():
                started.set_result(None)

        def on_disconnected(_: Any) -> None:
            if not started.done():
                started.set_exception(ConnectionError("slixmpp's component could not connect"))
            elif not lost.done():
                lost.set_result(None)

        x.add_event_handler("session_start", on_start)
        x.add_event_handler("disconnected", on_disconnected)
        x.add_event_handler("connection_failed", on_disconnected)
        x.add_event_handler("message", self._on_message)
        self.sender = x
        x.connect()
        await asyncio.wait_for(started, sc.timeout)
        await u.plugin["xep_0199"].send_ping(sc.domain, timeout=sc.timeout)
        await x.plugin["xep_0199"].send_ping(sc.domain, ifrom=self.domain, timeout=sc.timeout)
        with contextlib.suppress(Exception):
            obj = u.transport.get_extra_info("ssl_object")
            self.tls = f"{obj.version()} {obj.cipher()[0]}"

    async def flood(self, n: int) -> None:
        """The component's ``send_message`` (``mfrom`` its domain) for each
        message, yielding to the loop every 100."""
        send_message = self.sender.send_message
        to = str(self.receiver.boundjid.full)
        text, frm = self.sc.text, self.domain
        for i in range(n):
            send_message(mto=to, mbody=text, mtype="chat", mfrom=frm)
            if i % 100 == 99:
                await asyncio.sleep(0)

    async def flood_in(self, n: int) -> None:
        """The user's ``send_message`` to an address at the component's domain."""
        send_message = self.receiver.send_message
        to = str(component_address(self.domain))
        text = self.sc.text
        for i in range(n):
            send_message(mto=to, mbody=text, mtype="chat")
            if i % 100 == 99:
                await asyncio.sleep(0)

    async def pings(self, n: int, inflight: int) -> None:
        """``n`` pings from the component (``ifrom`` its domain), ``inflight`` at a time."""
        from slixmpp.exceptions import IqError, IqTimeout

        send_ping = self.sender.plugin["xep_0199"].send_ping
        to = str(self.receiver.boundjid.full) if self.sc.iq_to == "peer" else self.sc.domain
        frm, timeout = self.domain, self.sc.timeout

        def one() -> Awaitable[Any]:
            return send_ping(to, ifrom=frm, timeout=timeout)  # type: ignore[no-any-return]

        await _round_trips(self, n, inflight, one, (IqError, IqTimeout))


async def _round_trips(
    pair: Any,
    n: int,
    inflight: int,
    one: Callable[[], Awaitable[Any]],
    errors: tuple[type[BaseException], ...],
) -> None:
    """Run ``one()`` ``n`` times, ``inflight`` at a time, timing each round
    trip into ``pair.latencies`` and counting ``pair.iq_ok`` and, for a
    reply that is one of ``errors``, ``pair.iq_failed`` (either library)."""
    lat = pair.latencies
    clock = time.perf_counter
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = clock()
            try:
                await one()
            except errors:
                pair.iq_failed += 1
            else:
                lat.append(clock() - t0)
                pair.iq_ok += 1

    await asyncio.gather(*(worker() for _ in range(max(1, min(inflight, n)))))


async def _finish(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel what is still running of ``tasks`` and wait for all of them (bounded)."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        _done, still = await asyncio.wait(pending, timeout=2.0)
        for t in still:
            t.cancel()
        if still:
            await asyncio.wait(still, timeout=2.0)
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved: no "never retrieved" warnings


async def _flood_phase(
    pairs: list[Any],
    sc: Scenario,
    sampler: _Sampler,
    phase: str,
    description: str,
    flood: Callable[[Any, int], Any],
    msg_bytes: int,
) -> Flood:
    """Send ``sc.messages`` messages with ``flood(pair, n)`` (split between the
    pairs) and wait until they are counted or stop arriving."""
    f = Flood(sent=sc.messages, msg_bytes=msg_bytes)
    shares = split(sc.messages, sc.clients)
    for p, n in zip(pairs, shares):
        p.expect(n)
    sampler.start(phase, description, sc.messages, lambda: sum(p.received for p in pairs))
    f0 = time.perf_counter()
    senders = [asyncio.ensure_future(flood(p, n)) for p, n in zip(pairs, shares)]
    try:
        await asyncio.gather(*senders)
    finally:
        await _finish(senders)
    await _await_delivery(pairs, sc.timeout)
    f.received = sum(p.received for p in pairs)
    f.bad = sum(p.bad for p in pairs)
    if f.received >= f.sent:
        f1 = max(p.t_last for p in pairs)
    else:
        f1 = max([p.t_last for p in pairs] + [time.perf_counter() - sc.timeout])
    f.seconds = max(f1 - f0, 1e-9)
    sampler.stop()
    return f


def component_address(domain: str) -> Any:
    """The address at a component's domain that the benchmark's users write to."""
    from xmpp.jid import JID

    return JID.parse(f"{COMPONENT_USER}@{domain}")


async def run_library(
    pair_cls: Any, sc: Scenario, progress: Progress, version: str
) -> Result:
    """Run the scenario with one library's pairs and return what it achieved."""
    res = Result(pair_cls.name, version)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    pairs = [pair_cls(sc, i) for i in range(sc.clients)]
    sampler = _Sampler(progress, res, t0)
    sampler_task = asyncio.ensure_future(sampler.run())
    label = pair_cls.name
    try:
        n_conn = [0]

        async def connect(p: Any) -> None:
            await p.connect()
            n_conn[0] += 1

        sampler.start("connect", f"{label}: log in", sc.clients, lambda: n_conn[0])
        await asyncio.gather(*(connect(p) for p in pairs))
        res.connect_seconds = time.perf_counter() - t0
        res.sasl = pairs[0].sasl
        res.tls = pairs[0].tls

        # 1. Messages (for a component: to the user, then from the user).
        first, second = sc.pairs[0]
        out = await _flood_phase(
            pairs, sc, sampler, "messages",
            f"{label}: messages" + (" to the user" if sc.component else ""),
            lambda p, n: p.flood(n), message_bytes(first.jid, second.jid, sc.text),
        )
        res.sent, res.received, res.bad = out.sent, out.received, out.bad
        res.msg_bytes, res.flood_seconds = out.msg_bytes, out.seconds
        if sc.component:
            res.inbound = await _flood_phase(
                pairs, sc, sampler, "inbound", f"{label}: messages to the component",
                lambda p, n: p.flood_in(n),
                message_bytes(second.jid, component_address(first.jid.domain), sc.text),
            )

        # 2. IQ pings.
        iq_shares = split(sc.iq, sc.clients)
        sampler.start("iq", f"{label}: IQ pings", sc.iq,
                      lambda: sum(p.iq_ok + p.iq_failed for p in pairs))
        i0 = time.perf_counter()
        await asyncio.gather(*(p.pings(n, sc.inflight) for p, n in zip(pairs, iq_shares) if n))
        res.iq_seconds = time.perf_counter() - i0
        res.iq_ok = sum(p.iq_ok for p in pairs)
        res.iq_failed = sum(p.iq_failed for p in pairs)
        res.latencies = [v for p in pairs for v in p.latencies]
        sampler.stop()
    finally:
        sampler_task.cancel()
        with contextlib.suppress(BaseException):
            await sampler_task
        await asyncio.gather(*(p.close() for p in pairs), return_exceptions=True)
        res.cpu_seconds = time.process_time() - cpu0
        res.wall_seconds = time.perf_counter() - t0
    return res


async def _await_delivery(pairs: list[Any], stall: float) -> None:
    """Wait until every pair has counted its messages, or nothing arrived for
    ``stall`` seconds, or a session failed (raised)."""
    last = -1
    last_change = time.monotonic()
    while True:
        waiting = [p.all_in for p in pairs if p.all_in is not None and not p.all_in.done()]
        if not waiting:
            return
        for p in pairs:
            exc = p.failed()
            if exc is not None:
                raise exc
        await asyncio.wait(waiting, timeout=SAMPLE_INTERVAL)
        now_count = sum(p.received for p in pairs)
        if now_count != last:
            last, last_change = now_count, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return


# ---------------------------------------------------------------------------
# Setting up, and the whole command


def _engine() -> str:
    from xmpp import xmlstream

    return "compiled" if xmlstream.COMPILED else "pure"


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "?"


def _installed(module: str) -> bool:
    """True when ``module`` can be found (a module blocked in ``sys.modules`` cannot)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _check_args(args: argparse.Namespace) -> None:
    component = args.component is not None
    if component and args.component:
        domain = common.parse_jid(args.component, "--component domain")
        if not domain.is_domain:
            raise CLIError(f"--component {args.component!r} is not a bare domain", EXIT_USAGE)
    if component and args.server and not args.component:
        raise CLIError("--server with --component needs the component's domain: --component DOMAIN",
                       EXIT_USAGE)
    if component and args.server and args.clients != 1:
        raise CLIError("--component with --server runs one component: --clients must be 1", EXIT_USAGE)
    if component and args.jid2:
        raise CLIError("--jid2 is for the client scenario, not --component", EXIT_USAGE)
    if not component and args.component_secret_file:
        raise CLIError("--component-secret-file is for --component", EXIT_USAGE)
    if not 0 < args.component_port < 65536:
        raise CLIError("--component-port: no such port", EXIT_USAGE)
    for name in ("messages", "iq"):
        if getattr(args, name) < 0:
            raise CLIError(f"--{name} must not be negative", EXIT_USAGE)
    if args.size < 1:
        raise CLIError("--size must be at least 1", EXIT_USAGE)
    if args.clients < 1 or args.inflight < 1:
        raise CLIError("--clients and --inflight must be at least 1", EXIT_USAGE)
    if args.timeout <= 0:
        raise CLIError("--timeout must be positive", EXIT_USAGE)
    if args.plot and not _installed("matplotlib"):
        raise CLIError(
            "--plot needs matplotlib: install the plot extra (pip install 'xmpp[plot]')", EXIT_USAGE
        )
    if args.compare == "slixmpp" and not _installed("slixmpp"):
        raise CLIError("--compare slixmpp needs slixmpp installed (pip install slixmpp)", EXIT_USAGE)
    if args.server is None and (args.jid or args.jid2 or args.password_file or args.password2_file
                                or args.component_secret_file):
        raise CLIError("--jid, --jid2 and the password and secret files are for --server HOST[:PORT]",
                       EXIT_USAGE)


def parse_server(value: str, direct_tls: bool) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) as a host and a port
    (default 5222, or 5223 for direct TLS)."""
    default = 5223 if direct_tls else 5222
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", value)
    if m:
        host, port = m.group(1), m.group(2)
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, None
    if not host:
        raise CLIError(f"--server {value!r}: no host", EXIT_USAGE)
    try:
        p = int(port) if port else default
    except ValueError:
        raise CLIError(f"--server {value!r}: the port is not a number", EXIT_USAGE) from None
    if not 0 < p < 65536:
        raise CLIError(f"--server {value!r}: no such port", EXIT_USAGE)
    return host, p


def _external_scenario(args: argparse.Namespace, base: dict[str, Any]) -> Scenario:
    if not args.jid:
        raise CLIError("--server needs --jid (the account to log in as)", EXIT_USAGE)
    jid = common.parse_jid(args.jid, "--jid")
    if not jid.local:
        raise CLIError(f"--jid {args.jid!r} has no user name", EXIT_USAGE)
    password = common.get_password(args.password_file, who=str(jid.bare()))
    jid2 = common.parse_jid(args.jid2, "--jid2") if args.jid2 else None
    if jid2 is not None and jid2.domain != jid.domain:
        raise CLIError("--jid and --jid2 must be accounts of the same server", EXIT_USAGE)
    if jid2 is not None:
        password2 = (
            common.get_password(args.password2_file, env=common.PASSWORD2_ENV, who=str(jid2.bare()), prompt=False)
            if args.password2_file or _env(common.PASSWORD2_ENV)
            else password
        )
    host, port = parse_server(args.server, args.direct_tls)
    tag = secrets.token_hex(3)
    pairs = []
    for i in range(args.clients):
        s = Account(jid.bare().with_resource(f"bench-s{i}-{tag}"), password)
        r = (
            Account(jid2.bare().with_resource(f"bench-r{i}-{tag}"), password2)
            if jid2 is not None
            else Account(jid.bare().with_resource(f"bench-r{i}-{tag}"), password)
        )
        pairs.append((s, r))
    return Scenario(
        host=host, port=port, domain=jid.domain, direct_tls=args.direct_tls,
        context=common.tls_context(args), pairs=pairs, kind="external", **base,
    )


def _external_component_scenario(args: argparse.Namespace, base: dict[str, Any]) -> Scenario:
    """``--server HOST[:PORT] --component DOMAIN --jid JID``: one component, one user."""
    from xmpp.jid import JID

    if not args.jid:
        raise CLIError("--server needs --jid (the user account the component writes to)", EXIT_USAGE)
    jid = common.parse_jid(args.jid, "--jid")
    if not jid.local:
        raise CLIError(f"--jid {args.jid!r} has no user name", EXIT_USAGE)
    password = common.get_password(args.password_file, who=str(jid.bare()))
    domain = JID.parse(args.component)
    if domain.domain == jid.domain:
        raise CLIError("--component must be the component's own domain, not the server's", EXIT_USAGE)
    if args.component_secret_file:
        secret = common.read_password_file(args.component_secret_file)
    else:
        secret = _env(common.COMPONENT_SECRET_ENV) or ""
        if not secret:
            raise CLIError(
                f"no component secret: set ${common.COMPONENT_SECRET_ENV} or use "
                "--component-secret-file FILE", EXIT_USAGE,
            )
    host, port = parse_server(args.server, args.direct_tls)
    user = Account(jid.bare().with_resource(f"bench-u-{secrets.token_hex(3)}"), password)
    return Scenario(
        host=host, port=port, domain=jid.domain, direct_tls=args.direct_tls,
        context=common.tls_context(args), pairs=[(Account(domain, secret), user)], kind="external",
        component=True, component_port=args.component_port, **base,
    )


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name) or None


async def _run(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    from xmpp.jid import JID

    base = dict(
        messages=args.messages, size=args.size, clients=args.clients, iq=args.iq,
        inflight=args.inflight, iq_to=args.iq_to, timeout=args.timeout,
        mechanisms=common.mechanisms(args),
    )
    server: Any = None
    component = args.component is not None
    if args.server:
        sc = _external_component_scenario(args, base) if component else _external_scenario(args, base)
    else:
        from xmpp.testing import Server

        users: dict[str, str] = {}
        components: dict[str, str] = {}
        pairs = []
        if component:
            cdomain = JID.parse(args.component or DEFAULT_COMPONENT_DOMAIN).domain
            for i in range(args.clients):
                d = cdomain if args.clients == 1 else f"c{i}.{cdomain}"
                components[d] = secrets.token_urlsafe(12)
                users[f"user{i}"] = secrets.token_urlsafe(12)
                pairs.append((
                    Account(JID.parse(d), components[d]),
                    Account(JID.parse(f"user{i}@localhost/bench"), users[f"user{i}"]),
                ))
        else:
            for i in range(args.clients):
                for role in ("sender", "receiver"):
                    users[f"{role}{i}"] = secrets.token_urlsafe(12)
                pairs.append((
                    Account(JID.parse(f"sender{i}@localhost/bench"), users[f"sender{i}"]),
                    Account(JID.parse(f"receiver{i}@localhost/bench"), users[f"receiver{i}"]),
                ))
        server = Server(users, domain="localhost", host="127.0.0.1", timeout=args.timeout,
                        direct_tls=args.direct_tls, components=components)
        sc = Scenario(
            host=server.host, port=0, domain=server.domain, direct_tls=args.direct_tls,
            context=server.client_context(), pairs=pairs, kind="embedded",
            component=component, **base,
        )
    progress = make_progress(enabled=not args.no_progress)
    results: list[Result] = []
    try:
        if server is not None:
            await server.start()
            sc.port = server.port
            sc.component_port = server.component_port
        ours, slix = (_OursComponentPair, _SlixComponentPair) if sc.component else (_OursPair, _SlixPair)
        libs: list[tuple[Any, str]] = [(ours, _version("xmpp"))]
        if args.compare == "slixmpp":
            libs.append((slix, _version("slixmpp")))
        for cls, version in libs:
            try:
                results.append(await run_library(cls, sc, progress, version))
            except Exception as exc:
                if cls is ours:
                    raise
                code, line = common.classify(exc)
                if args.debug:
                    logging.getLogger(__name__).exception("%s failed", cls.name)
                r = Result(cls.name, version, error=line)
                results.append(r)
    finally:
        progress.close()
        if server is not None:
            await server.close()
    report = {
        "tool": "python -m xmpp bench",
        "engine": _engine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
        "server": {
            "kind": sc.kind,
            "address": f"{sc.host}:{sc.port}",
            "domain": sc.domain,
            "direct_tls": sc.direct_tls,
            "component_address": f"{sc.host}:{sc.component_port}" if sc.component else None,
        },
        "scenario": {
            "messages": sc.messages, "size": sc.size, "clients": sc.clients, "iq": sc.iq,
            "inflight": sc.inflight, "iq_to": sc.iq_to, "timeout": sc.timeout,
            "component": [str(c.jid) for c, _u in sc.pairs] if sc.component else None,
        },
        "results": [r.as_dict() for r in results],
    }
    code = EXIT_OK if all(r.ok for r in results) else EXIT_ERROR
    return report, code


# ---------------------------------------------------------------------------
# Showing the results


def _fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The column heads and the rows of the summary table."""
    heads = []
    for r in report["results"]:
        head = f"{r['name']} {r['version']}"
        if r["name"] == "xmpp":
            head += f" ({report['engine']})"
        heads.append(head)
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, f: Callable[[dict[str, Any]], str]) -> None:
        rows.append((label, [("failed" if r["error"] and label != "error" else f(r)) for r in report["results"]]))

    def delivered(r: dict[str, Any]) -> str:
        s = f"{r['messages_received']:,} of {r['messages_sent']:,}"
        if r["messages_lost"]:
            s += f" ({r['messages_lost']:,} LOST)"
        if r["messages_damaged"]:
            s += f" ({r['messages_damaged']:,} DAMAGED)"
        return s

    def iqs(r: dict[str, Any]) -> str:
        s = f"{r['iq_ok']:,} of {r['iq_ok'] + r['iq_failed']:,}"
        return s + (f" ({r['iq_failed']:,} FAILED)" if r["iq_failed"] else "")

    def mbs(r: dict[str, Any]) -> str:
        return "-" if r["megabytes_per_second"] is None else f"{r['megabytes_per_second']:.2f}"

    if report["scenario"].get("component"):
        # The component path: both directions, each with the client bench's rows.
        def inbound(f: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
            return lambda r: f(r["inbound"]) if r.get("inbound") else "-"

        for d, get in (("to user", lambda f: f), ("to component", inbound)):
            row(f"{d}: delivered", get(delivered))
            row(f"{d}: stanzas/s", get(lambda r: _fmt_rate(r["stanzas_per_second"])))
            row(f"{d}: MB/s (XML)", get(mbs))
    else:
        row("messages delivered", delivered)
        row("message stanzas/s", lambda r: _fmt_rate(r["stanzas_per_second"]))
        row("MB/s (stanza XML)", mbs)
    row("IQ pings answered", iqs)
    row("IQ round trips/s", lambda r: _fmt_rate(r["iq_per_second"]))
    row("IQ latency p50", lambda r: _fmt_ms(r["iq_latency_ms"]["p50"]))
    row("IQ latency p99", lambda r: _fmt_ms(r["iq_latency_ms"]["p99"]))
    row("CPU seconds (process)", lambda r: f"{r['cpu_seconds']:.2f}")
    row("wall seconds", lambda r: f"{r['wall_seconds']:.2f}")
    if any(r["error"] for r in report["results"]):
        rows.append(("error", [r["error"] or "" for r in report["results"]]))
    return heads, rows


def describe(report: dict[str, Any]) -> list[str]:
    """The lines above the table: where, what, how."""
    sv, sc = report["server"], report["scenario"]
    ours = next((r for r in report["results"] if r["name"] == "xmpp"), None)
    where = (
        f"embedded xmpp.testing.Server on {sv['address']} (same process and event loop)"
        if sv["kind"] == "embedded"
        else f"server {sv['address']} ({sv['domain']})"
    )
    how = "direct TLS" if sv["direct_tls"] else "STARTTLS"
    if ours is not None and ours.get("tls"):
        how += f" {ours['tls']}"
    if ours is not None and ours.get("sasl"):
        how += f", SASL {ours['sasl']}"
    how += ", bind"
    pairs = "1 pair" if sc["clients"] == 1 else f"{sc['clients']} pairs at once"
    if sc.get("component"):
        where = (
            f"embedded xmpp.testing.Server, clients on {sv['address']}, components on "
            f"{sv['component_address']} (same process and event loop)"
            if sv["kind"] == "embedded"
            else f"server {sv['address']} ({sv['domain']}), component port {sv['component_address']}"
        )
        comps = ", ".join(sc["component"])
        pairs = "1 component and 1 user" if sc["clients"] == 1 else f"{sc['clients']} components and users at once"
        return [
            f"xmpp bench: component path (XEP-0114): {where}",
            f"  component {comps}: handshake, plain TCP; user: {how}; engine {report['engine']}; "
            f"{report['python']}",
            f"  {pairs}: {sc['messages']:,} messages component -> user, then {sc['messages']:,} "
            f"user -> component, {sc['size']:,}-byte bodies; then {sc['iq']:,} pings from the "
            f"component to the {'server' if sc['iq_to'] == 'server' else 'user'} "
            f"({sc['inflight']} in flight per component)",
        ]
    return [
        f"xmpp bench: {where}",
        f"  {how}; engine {report['engine']}; {report['python']}",
        f"  {pairs}: {sc['messages']:,} messages with {sc['size']:,}-byte bodies, then "
        f"{sc['iq']:,} pings to the {'server' if sc['iq_to'] == 'server' else 'other client'} "
        f"({sc['inflight']} in flight per pair)",
    ]


def render_text(report: dict[str, Any]) -> str:
    """The summary as plain text (no ``rich``)."""
    heads, rows = table_rows(report)
    w0 = max(len(label) for label, _ in rows)
    widths = [max(len(h), *(len(cells[i]) for _, cells in rows)) for i, h in enumerate(heads)]
    lines = describe(report) + [""]
    lines.append(" " * w0 + "  " + "  ".join(h.rjust(w) for h, w in zip(heads, widths)))
    lines.append("-" * w0 + "  " + "  ".join("-" * w for w in widths))
    for label, cells in rows:
        lines.append(label.ljust(w0) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return "\n".join(lines)


def _render_rich(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    heads, rows = table_rows(report)
    for line in describe(report):
        console.print(line, highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("")
    for h in heads:
        table.add_column(h, justify="right")
    for label, cells in rows:
        style = "red" if any(("LOST" in c or "FAILED" in c or "DAMAGED" in c) for c in cells) else None
        table.add_row(label, *cells, style=style)
    console.print(table)


def plot(report: dict[str, Any], path: str) -> None:
    """Draw throughput over time (per 100 ms sample) of every library into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    styles = {"messages": "-", "inbound": ":", "iq": "--"}
    what = {"messages": "messages/s", "inbound": "messages to the component/s", "iq": "IQ round trips/s"}
    if report["scenario"].get("component"):
        what["messages"] = "messages to the user/s"
    for r in report["results"]:
        for phase in ("messages", "inbound", "iq"):
            pts = [(t, c) for t, ph, c in r["samples"] if ph == phase]
            xs, ys = [], []
            for (ta, ca), (tb, cb) in zip(pts, pts[1:]):
                if tb > ta:
                    xs.append(tb)
                    ys.append((cb - ca) / (tb - ta))
            if xs:
                ax.plot(xs, ys, styles[phase], label=f"{r['name']}: {what[phase]}")
    ax.set_xlabel("seconds since the library's run started")
    ax.set_ylabel("stanzas (or round trips) per second")
    ax.set_title("xmpp bench: " + "; ".join(describe(report)[1:2]).strip(), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Run ``bench`` with parsed ``args``; return the exit code (errors raise)."""
    _check_args(args)
    if not args.debug:
        logging.getLogger("slixmpp").setLevel(logging.CRITICAL)
    report, code = asyncio.run(_run(args))
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    elif rich_available():
        _render_rich(report)
    else:
        sys.stdout.write(render_text(report) + "\n")
    sys.stdout.flush()
    if args.plot:
        try:
            plot(report, args.plot)
        except OSError as exc:
            raise CLIError(f"cannot write the plot {args.plot}: {exc.strerror or exc}", EXIT_ERROR) from None
        if not args.json:
            sys.stderr.write(f"plot written to {args.plot}\n")
    return code
