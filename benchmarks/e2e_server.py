"""End-to-end message throughput through a real XMPP server, three clients side by side.

One run starts a throw-away ejabberd (or Prosody, ``--server prosody``) on
127.0.0.1 from the integration fixtures (``tests/integration/servers.py``:
shapers off, ``max_fsm_queue`` raised, no MAM, no offline storage), then
for each row sends ``--messages`` chat messages with a ``--size``-byte body
from a sender client, through the server, to a receiver client:

- ``raw``: a minimal hand-written client (plain asyncio and ``ssl``:
  STARTTLS, SASL PLAIN, bind, all in literal bytes).  The sender writes
  messages serialized before the clock starts; the receiver counts
  ``</message>`` in the bytes it decrypts.  This row shows what the server
  itself can route: the ceiling for any client.
- ``ours``: two sessions of this library (:func:`xmpp.client.dial_client_session`,
  or ``new_session`` over :func:`xmpp.dial.dial` with STARTTLS, SASL and
  bind).  The sender awaits ``send_message(Message(...), body)`` per
  message; the receiver serves a :class:`xmpp.mux.ServeMux` whose message
  handler counts.
- ``slixmpp``: two ``slixmpp.ClientXMPP`` instances; the sender calls
  ``send_message`` per message, the receiver counts ``message`` events.

Every client runs in its own process (this script started again with
``--worker``), so a sender and its receiver do not share a core or a GIL,
and each reports its own CPU time.  Before the clock starts both ends are
logged in, the receiver has sent its initial presence and both have had an
IQ ping answered (so the server has finished setting them up); the sender
addresses the receiver's full JID.  The rate is messages per second from
the sender's first send until the receiver has counted the last message
(``time.monotonic`` is one clock for every process of the machine).  A row
that does not receive every message within ``--timeout`` seconds reports
how many arrived.

The table shows each row's rate, its ratio to the raw row, the CPU seconds
of the sender and receiver processes (and the server's, from ``/proc``)
while the row ran, and per message.  Target: ours reaches at least 90% of
the raw client's rate (PASS/MISS), so that the server, not the library, is
the limit.  ``--repeat K`` (default 3) runs the rows K times round-robin
and shows medians; the ratio to raw is the median of the ratios within
each round (rows of one round run back to back, under the same load of
the machine).  ``--json`` prints the results as JSON instead of the table,
``--json-out FILE`` writes them to a file as well; ``--profile DIR`` runs
the ``ours`` workers under cProfile and writes ``ours-sender.prof`` and
``ours-receiver.prof`` there (the rates are then not comparable).

Run: ``python benchmarks/e2e_server.py [--server ejabberd|prosody]
[--messages N] [--size BYTES] [--rows raw,ours,slixmpp] [--repeat K] [--json]``.
Everything stays on loopback and every process started here is stopped by
its pid at the end, on an error and on Ctrl-C.  The exit status is 1 when a
row failed or lost messages (never because of a rate).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import re
import signal
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROWS = ("raw", "ours", "slixmpp")
TARGET = 0.90
USERS = {"sender": "senderpass", "receiver": "receiverpass"}
MSG_END = b"</message>"
PING_NS = "urn:xmpp:ping"
READY_ID = "e2e-ready"
#: How long logging in (both ends) may take, and closing.
CONNECT_TIMEOUT = 60.0
CLOSE_TIMEOUT = 10.0
_FILLER = (
    "Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike. "
    "How camest thou hither, tell me, and wherefore? "
)


def bodies(n: int, size: int) -> list[str]:
    """The ``n`` message bodies: ``size`` ASCII characters each, numbered (``#000042 ...``)."""
    out = []
    for i in range(n):
        head = f"#{i:06d} "
        text = head + _FILLER * (size // len(_FILLER) + 1)
        out.append(text[: max(size, len(head))])
    return out


def _emit(**event: Any) -> None:
    """Tell the parent about an event of a worker: one JSON line on stdout."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _tls_context(ca_file: str) -> ssl.SSLContext:
    """A client context that trusts the test CA only and checks the host name."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ---------------------------------------------------------------------------
# Row 1: a raw client in literal bytes


class _RawProtocol(asyncio.Protocol):
    """Bytes in a buffer until counting starts; then only ``</message>`` is counted."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.counting = False
        self.count = 0
        self.target = 0
        self.t_first = 0.0
        self.t_last = 0.0
        self.all_in: asyncio.Future[None] | None = None
        self._tail = b""
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.counting:
            self.buf += data
            self._wake()
            return
        # A </message> split between two chunks is found in the seam.
        n = data.count(MSG_END) + (self._tail + data[: len(MSG_END) - 1]).count(MSG_END)
        self._tail = data[-(len(MSG_END) - 1) :]
        if n:
            if not self.count:
                self.t_first = time.monotonic()
            self.count += n
            if self.count >= self.target and self.all_in is not None and not self.all_in.done():
                self.t_last = time.monotonic()
                self.all_in.set_result(None)
        if b"</stream:stream>" in data:
            self.closed = True
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionError("connection closed")
        self.closed = True
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(self.lost)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def drain(self) -> None:
        if self._paused:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    async def until(self, pattern: re.Pattern[bytes], timeout: float = 30.0) -> re.Match[bytes]:
        """Wait until ``pattern`` matches the buffer; consume up to the end of the match."""
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.buf)
            if m is not None:
                consumed = bytes(self.buf[: m.end()])
                del self.buf[: m.end()]
                match = pattern.search(consumed)
                assert match is not None
                return match
            if self.closed:
                raise ConnectionError(f"the server closed the stream: {bytes(self.buf[-300:])!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waiting for {pattern.pattern!r}; have {bytes(self.buf[-300:])!r}")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, left)
            except asyncio.TimeoutError:
                pass
            finally:
                self.waiter = None


_FEATURES_END = re.compile(rb"</stream:features>")
_PROCEED = re.compile(rb"<proceed[^>]*>|<failure[^>]*>")
_SASL_DONE = re.compile(rb"<success[^>]*/>|</success>|</failure>|<failure[^>]*/>")
_BIND_REPLY = re.compile(rb"<jid>([^<]+)</jid>.*?</iq>|type=['\"]error['\"].*?</iq>", re.S)
_READY_REPLY = re.compile(rb"<iq[^>]*id=['\"]" + READY_ID.encode() + rb"['\"][^>]*?(/>|>.*?</iq>)", re.S)


class RawClient:
    """The ``raw`` row: STARTTLS, SASL PLAIN and bind written in literal bytes."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.proto = _RawProtocol()
        self.jid = ""

    def _header(self) -> bytes:
        domain: str = self.args.domain
        return (
            b"<?xml version='1.0'?><stream:stream to='" + domain.encode() + b"' version='1.0' "
            b"xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        )

    async def connect(self) -> str:
        """Log in and bind; send the initial presence and wait for a ping reply; return the full JID."""
        a = self.args
        loop = asyncio.get_running_loop()
        p = self.proto
        transport, _ = await loop.create_connection(lambda: p, a.host, a.port)
        t = transport
        t.write(self._header())
        features = (await p.until(_FEATURES_END)).string
        if b"<starttls" not in features:
            raise ConnectionError("the server does not offer STARTTLS")
        t.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        if not (await p.until(_PROCEED)).group(0).startswith(b"<proceed"):
            raise ConnectionError("STARTTLS refused")
        new = await loop.start_tls(t, p, _tls_context(a.ca_file), server_hostname=a.domain)
        if new is None:
            raise ConnectionError("the connection closed during the TLS handshake")
        t = p.transport = new
        t.write(self._header())
        features = (await p.until(_FEATURES_END)).string
        if b">PLAIN<" not in features:
            raise ConnectionError(f"the server does not offer PLAIN: {features!r}")
        cred = base64.b64encode(b"\0" + a.user.encode() + b"\0" + a.password.encode())
        t.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + cred + b"</auth>")
        if b"success" not in (await p.until(_SASL_DONE)).group(0):
            raise ConnectionError("SASL PLAIN failed")
        t.write(self._header())
        await p.until(_FEATURES_END)
        t.write(
            b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
        )
        m = await p.until(_BIND_REPLY)
        if m.group(1) is None:
            raise ConnectionError(f"bind failed: {m.group(0)!r}")
        self.jid = m.group(1).decode()
        t.write(
            b"<presence/><iq type='get' id='" + READY_ID.encode() + b"' to='" + a.domain.encode()
            + b"'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        await p.until(_READY_REPLY)
        return self.jid

    async def receive(self, n: int, timeout: float) -> tuple[int, float, float]:
        """Count messages until ``n`` have arrived or ``timeout`` passed."""
        p = self.proto
        p.target = n
        p.all_in = asyncio.get_running_loop().create_future()
        p.count = p.buf.count(MSG_END)
        p.buf.clear()
        p.counting = True
        if p.count >= n:
            p.t_first = p.t_last = time.monotonic()
            return p.count, p.t_first, p.t_last
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(p.all_in), timeout)
        return p.count, p.t_first, p.t_last

    def prepare(self, to: str, texts: Sequence[str]) -> None:
        """Serialize every message before the clock starts."""
        to_b = to.encode()
        self.blob = b"".join(
            b"<message to='" + to_b + b"' id='r" + str(i).encode() + b"' type='chat'><body>"
            + text.encode() + b"</body></message>"
            for i, text in enumerate(texts)
        )

    async def send(self) -> None:
        """Write the prepared messages, 64 KiB at a time, waiting on the transport's flow control."""
        t = self.proto.transport
        assert t is not None
        blob = self.blob
        step = 1 << 16
        for i in range(0, len(blob), step):
            t.write(blob[i : i + step])
            await self.proto.drain()

    async def close(self) -> None:
        """Close the stream, wait (bounded) for the server's end, close the connection."""
        p = self.proto
        t = p.transport
        if t is None or t.is_closing():
            return
        p.counting = True
        with contextlib.suppress(Exception):
            t.write(b"</stream:stream>")
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while not p.closed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        t.close()
        while p.lost is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------
# Row 2: this library


class OursClient:
    """The ``ours`` row: two sessions of this library."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.session: Any = None
        self.serving: asyncio.Task[None] | None = None
        self.count = 0
        self.target = 0
        self.t_first = 0.0
        self.t_last = 0.0
        self.all_in: asyncio.Future[None] | None = None

    async def _dial(self) -> Any:
        a = self.args
        ctx = _tls_context(a.ca_file)
        jid = f"{a.user}@{a.domain}"
        if importlib.util.find_spec("xmpp.client") is not None:
            from xmpp import client

            return await client.dial_client_session(
                jid, a.password, tls_context=ctx, host=a.host, port=a.port, direct_tls=False,
                timeout=CONNECT_TIMEOUT,
            )
        # Before xmpp.client existed: the same features by hand.
        from xmpp.bind import bind
        from xmpp.dial import dial
        from xmpp.negotiator import StreamConfig
        from xmpp.sasl import sasl
        from xmpp.session import new_session, protocol_factory
        from xmpp.starttls import starttls

        transport, _, _ = await dial(
            a.domain, protocol_factory, host=a.host, port=a.port, direct_tls=False, tls_context=ctx,
            timeout=CONNECT_TIMEOUT,
        )
        config = StreamConfig(features=(starttls(ctx), sasl(a.user, a.password), bind()))
        return await new_session(transport, a.domain, origin=jid, config=config)

    async def connect(self) -> str:
        """Log in and bind; serve; send the initial presence and ping the server; return the full JID."""
        from xmpp.jid import JID
        from xmpp.mux import ServeMux
        from xmpp.stanza import IQ, IQType, Presence
        from xmpp.stream import NS_CLIENT
        from xmpp.xmlstream import Name, StartElement

        s = self.session = await self._dial()
        mux = ServeMux(NS_CLIENT).message_func(None, None, self._on_message)
        self.serving = asyncio.ensure_future(s.serve(mux))
        await asyncio.sleep(0)  # let serve start: send_iq needs it
        await s.send_presence(Presence())
        ping = StartElement(Name(PING_NS, "ping"))
        await s.send_iq(IQ(to=JID.parse(self.args.domain), type=IQType.GET), (ping, ping.end()), timeout=30)
        return str(s.local_addr)

    def _on_message(self, msg: Any, el: Any, session: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.t_first = time.monotonic()
        if self.count == self.target and self.all_in is not None and not self.all_in.done():
            self.t_last = time.monotonic()
            self.all_in.set_result(None)

    async def receive(self, n: int, timeout: float) -> tuple[int, float, float]:
        """Count messages until ``n`` have arrived or ``timeout`` passed."""
        self.target = n
        self.all_in = asyncio.get_running_loop().create_future()
        if self.count >= n:
            return self.count, self.t_first, time.monotonic()
        waits = [self.all_in, self.serving]
        await asyncio.wait(
            [w for w in waits if w is not None], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self.serving is not None and self.serving.done() and not self.all_in.done():
            self.serving.result()  # the stream ended early: say why
        return self.count, self.t_first, self.t_last

    def prepare(self, to: str, texts: Sequence[str]) -> None:
        """Keep the recipient and the body texts (the stanzas are made while sending)."""
        from xmpp.jid import JID

        self.to = JID.parse(to)
        self.texts = texts

    async def send(self) -> None:
        """``send_message(Message(to, chat), <body>text</body>)`` for each text."""
        from xmpp.stanza import Message, MessageType
        from xmpp.stream import NS_CLIENT
        from xmpp.xmlstream import CharData, Name, StartElement

        body = StartElement(Name(NS_CLIENT, "body"))
        end = body.end()
        to = self.to
        chat = MessageType.CHAT
        send_message = self.session.send_message
        for text in self.texts:
            await send_message(Message(to=to, type=chat), (body, CharData(text), end))
        await self.session.drain()

    async def close(self) -> None:
        """Close the session (bounded) and end the serve task."""
        if self.session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.session.close(), CLOSE_TIMEOUT)
        if self.serving is not None:
            if not self.serving.done():
                self.serving.cancel()
            with contextlib.suppress(BaseException):
                await self.serving


# ---------------------------------------------------------------------------
# Row 3: slixmpp


class SlixClient:
    """The ``slixmpp`` row: ``slixmpp.ClientXMPP`` over STARTTLS with the test CA."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.xmpp: Any = None
        self.count = 0
        self.target = 0
        self.t_first = 0.0
        self.t_last = 0.0
        self.all_in: asyncio.Future[None] | None = None

    async def connect(self) -> str:
        """Log in and bind; send the initial presence and ping the server; return the full JID."""
        import slixmpp

        a = self.args
        loop = asyncio.get_running_loop()
        x = self.xmpp = slixmpp.ClientXMPP(f"{a.user}@{a.domain}", a.password)
        x.enable_direct_tls = False
        x.enable_starttls = True
        x.ssl_context = _tls_context(a.ca_file)
        x.register_plugin("xep_0199")
        started: asyncio.Future[None] = loop.create_future()

        def on_start(_: Any) -> None:
            if not started.done():
                started.set_result(None)

        def on_failure(ev: Any) -> None:
            if not started.done():
                started.set_exception(ConnectionError(f"slixmpp could not log in: {ev!r}"))

        x.add_event_handler("session_start", on_start)
        x.add_event_handler("failed_all_auth", on_failure)
        x.add_event_handler("message", self._on_message)
        x.connect(a.host, a.port)
        await asyncio.wait_for(started, CONNECT_TIMEOUT)
        x.send_presence()
        await x["xep_0199"].ping(jid=a.domain, timeout=30)
        return str(x.boundjid.full)

    def _on_message(self, msg: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.t_first = time.monotonic()
        if self.count == self.target and self.all_in is not None and not self.all_in.done():
            self.t_last = time.monotonic()
            self.all_in.set_result(None)

    async def receive(self, n: int, timeout: float) -> tuple[int, float, float]:
        """Count ``message`` events until ``n`` have arrived or ``timeout`` passed."""
        self.target = n
        self.all_in = asyncio.get_running_loop().create_future()
        if self.count >= n:
            return self.count, self.t_first, time.monotonic()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.all_in), timeout)
        return self.count, self.t_first, self.t_last

    def prepare(self, to: str, texts: Sequence[str]) -> None:
        """Keep the recipient and the body texts."""
        self.to = to
        self.texts = texts

    async def send(self) -> None:
        """``send_message(mto, mbody, mtype='chat')`` for each text, yielding every 100."""
        send_message = self.xmpp.send_message
        to = self.to
        for i, text in enumerate(self.texts):
            send_message(mto=to, mbody=text, mtype="chat")
            if i % 100 == 99:
                await asyncio.sleep(0)

    async def close(self) -> None:
        """Disconnect (bounded)."""
        if self.xmpp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.xmpp.disconnect(wait=2.0), CLOSE_TIMEOUT)


CLIENTS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "raw": RawClient,
    "ours": OursClient,
    "slixmpp": SlixClient,
}


# ---------------------------------------------------------------------------
# The worker process: one end of one row


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _command(ctl: asyncio.StreamReader, expected: str, timeout: float) -> None:
    """Wait for the parent's ``expected`` line; leave if it goes away or takes too long."""
    line = await asyncio.wait_for(ctl.readline(), timeout)
    if not line:
        raise SystemExit("the parent went away")
    if line.decode().strip() != expected:
        raise RuntimeError(f"expected {expected!r} from the parent, got {line!r}")


async def worker(args: argparse.Namespace) -> None:
    """Run one end (``args.role``) of one row (``args.worker``), talking to the parent on stdio."""
    ctl = await _stdin_lines()
    client = CLIENTS[args.worker](args)
    bound = args.timeout + CONNECT_TIMEOUT
    try:
        jid = await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT)
        if args.role == "receiver":
            _emit(event="ready", jid=jid)
            await _command(ctl, "go", bound)
            cpu0 = time.process_time()
            count, t_first, t_last = await client.receive(args.messages, args.timeout)
            _emit(event="done", count=count, t_first=t_first, t_last=t_last, cpu=time.process_time() - cpu0)
        else:
            client.prepare(args.to, bodies(args.messages, args.size))
            _emit(event="ready", jid=jid)
            await _command(ctl, "go", bound)
            cpu0 = time.process_time()
            t0 = time.monotonic()
            await asyncio.wait_for(client.send(), args.timeout)
            _emit(event="sent", t_first=t0, t_sent=time.monotonic(), cpu=time.process_time() - cpu0)
            await _command(ctl, "stop", bound)
            _emit(event="stopped", cpu=time.process_time() - cpu0)
        if args.role == "receiver":
            await _command(ctl, "stop", bound)
    except BaseException as exc:
        if not isinstance(exc, SystemExit):
            _emit(event="error", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        await client.close()


def _worker_main(args: argparse.Namespace) -> int:
    if args.profile_out:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            asyncio.run(worker(args))
        finally:
            prof.disable()
            prof.dump_stats(args.profile_out)
        return 0
    asyncio.run(worker(args))
    return 0


# ---------------------------------------------------------------------------
# The parent: server, rows, table


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and every process below it."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(entry))
        stats[int(entry)] = (int(fields[11]), int(fields[12]))
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        u, s = stats.get(p, (0, 0))
        total += u + s
        todo.extend(children.get(p, ()))
    return total / tick


class _Worker:
    """A worker process and its JSON-line events."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    async def event(self, expected: str, timeout: float) -> dict[str, Any]:
        """The next event; an ``error`` event or an early exit raises ``RuntimeError``."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.name}: no {expected!r} within {timeout:.0f} s")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), left)
            except asyncio.TimeoutError:
                continue
            if not line:
                err = await self._stderr()
                raise RuntimeError(f"{self.name} exited before {expected!r}: {err}")
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # something printed by a library
            if ev.get("event") == "error":
                raise RuntimeError(f"{self.name}: {ev.get('error')}")
            if ev.get("event") == expected:
                return ev  # type: ignore[no-any-return]

    def tell(self, line: str) -> None:
        """Send the worker one command line."""
        assert self.proc.stdin is not None
        with contextlib.suppress(Exception):
            self.proc.stdin.write(line.encode() + b"\n")

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        with contextlib.suppress(Exception):
            data = await asyncio.wait_for(self.proc.stderr.read(), 5)
            return data.decode(errors="replace").strip()[-2000:]
        return ""

    async def finish(self) -> None:
        """Close its stdin, wait (bounded) for it to exit, kill it by pid otherwise."""
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), CLOSE_TIMEOUT + 5)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


async def _spawn(
    row: str, role: str, server: Any, opts: argparse.Namespace, *, to: str = "", profile: str = ""
) -> _Worker:
    user = role
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker", row,
        "--role", role,
        "--host", server.host,
        "--port", str(server.c2s_port),
        "--domain", server.domain,
        "--user", user,
        "--password", server.users[user],
        "--ca-file", str(server.ca_file),
        "--messages", str(opts.messages),
        "--size", str(opts.size),
        "--timeout", str(opts.timeout),
        "--to", to,
        "--profile-out", profile,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 20,
    )
    return _Worker(proc, f"{row} {role}")


async def run_row(row: str, server: Any, opts: argparse.Namespace, workers: list[_Worker]) -> dict[str, Any]:
    """Run one row: start both ends, send, count; return its figures."""
    prof = {"receiver": "", "sender": ""}
    if opts.profile and row == "ours":
        os.makedirs(opts.profile, exist_ok=True)
        prof = {r: os.path.join(os.path.abspath(opts.profile), f"ours-{r}.prof") for r in prof}
    recv = await _spawn(row, "receiver", server, opts, profile=prof["receiver"])
    workers.append(recv)
    sender: _Worker | None = None
    try:
        ready = await recv.event("ready", CONNECT_TIMEOUT + 10)
        sender = await _spawn(row, "sender", server, opts, to=ready["jid"], profile=prof["sender"])
        workers.append(sender)
        await sender.event("ready", CONNECT_TIMEOUT + 10)
        server_cpu0 = _server_cpu(server.pid)
        recv.tell("go")
        sender.tell("go")
        done = await recv.event("done", opts.timeout + 30)
        server_cpu = _server_cpu(server.pid) - server_cpu0
        sent = await sender.event("sent", opts.timeout + 30)
        sender.tell("stop")
        stopped = await sender.event("stopped", 30)
        recv.tell("stop")
    finally:
        if sender is not None:
            await sender.finish()
        await recv.finish()
    n = opts.messages
    count = int(done["count"])
    elapsed = float(done["t_last"]) - float(sent["t_first"]) if count >= n else 0.0
    return {
        "received": count,
        "lost": max(n - count, 0),
        "seconds": elapsed if count >= n else None,
        "msgs_per_s": n / elapsed if count >= n and elapsed > 0 else None,
        "sender_cpu_s": float(stopped["cpu"]),
        "receiver_cpu_s": float(done["cpu"]),
        "server_cpu_s": server_cpu,
        "send_seconds": float(sent["t_sent"]) - float(sent["t_first"]),
    }


def _check_config(server: Any) -> list[str]:
    """What in the server's generated configuration could throttle the run (should be nothing)."""
    text = Path(server.config_path).read_text()
    problems = []
    if "mod_mam" in text or '"mam"' in text:
        problems.append("MAM is enabled")
    if server.name == "ejabberd":
        if "shaper: none" not in text or "c2s_shaper: none" not in text:
            problems.append("a shaper is on")
        if "max_fsm_queue: 1000000" not in text:
            problems.append("max_fsm_queue is not raised")
    return problems


_MEDIAN_KEYS = ("msgs_per_s", "seconds", "sender_cpu_s", "receiver_cpu_s", "server_cpu_s", "send_seconds")


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals and len(vals) == len(values) else None


async def run_all(opts: argparse.Namespace) -> dict[str, Any]:
    """Start the server, run every row ``--repeat`` times, stop everything; return the results."""
    sys.path.insert(0, str(REPO / "tests"))
    # The test fixtures' server classes (tests/integration/servers.py).
    servers: Any = importlib.import_module("integration.servers")

    from xmpp import xmlstream

    kind = {"ejabberd": servers.EjabberdServer, "prosody": servers.ProsodyServer}[opts.server]
    server = kind(users=dict(USERS))
    workers: list[_Worker] = []
    rounds: dict[str, list[dict[str, Any]]] = {r: [] for r in opts.rows}
    errors: dict[str, str] = {}
    problems: list[str] = []
    try:
        server.start()
        problems = _check_config(server)
        for _ in range(opts.repeat):
            for row in opts.rows:
                if row in errors:
                    continue
                try:
                    rounds[row].append(await run_row(row, server, opts, workers))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    errors[row] = str(exc)
    finally:
        for w in workers:
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.proc.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(w.proc.wait(), 5)
        server.stop()
    rows: dict[str, Any] = {}
    for row in opts.rows:
        rs = rounds[row]
        if row in errors or not rs:
            rows[row] = {"error": errors.get(row, "no result")}
            continue
        med: dict[str, Any] = {}
        for key in _MEDIAN_KEYS:
            med[key] = _median([r[key] for r in rs])
        med["received"] = min(r["received"] for r in rs)
        med["lost"] = max(r["lost"] for r in rs)
        med["rounds"] = rs
        rows[row] = med
    # The ratio to raw is taken round by round (the rows of one round ran
    # back to back, under the same load), then the median of those.
    raw_rounds = rows.get("raw", {}).get("rounds", [])
    for row, r in rows.items():
        ratios: list[float | None] = []
        for mine, raw in zip(r.get("rounds", []), raw_rounds):
            a, b = mine["msgs_per_s"], raw["msgs_per_s"]
            ratios.append(a / b if a and b else None)
        r["vs_raw"] = _median(ratios)
    ours = rows.get("ours", {}).get("vs_raw")
    return {
        "server": opts.server,
        "messages": opts.messages,
        "body_bytes": opts.size,
        "repeat": opts.repeat,
        "compiled": xmlstream.COMPILED,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "config_problems": problems,
        "rows": rows,
        "target": {"ratio": TARGET, "ours_vs_raw": ours, "pass": bool(ours is not None and ours >= TARGET)},
    }


def render(res: dict[str, Any]) -> str:
    """The results as a table."""
    n = res["messages"]
    lines = [
        f"end-to-end through {res['server']}: {n:,} chat messages, {res['body_bytes']}-byte bodies, "
        f"sender -> server -> receiver on 127.0.0.1 (STARTTLS); "
        f"{'median of ' + str(res['repeat']) if res['repeat'] > 1 else 'one round'}; "
        f"engine {'compiled' if res['compiled'] else 'pure'}, Python {res['python']}, {res['cpus']} CPUs",
    ]
    for p in res["config_problems"]:
        lines.append(f"WARNING: server configuration: {p}")
    head = (
        f"{'row':<9} {'msgs/s':>9} {'vs raw':>7} {'received':>15} {'wall s':>7} "
        f"{'send CPU s':>10} {'recv CPU s':>10} {'client µs/msg':>13} {'server CPU s':>12}"
    )
    lines += [head, "-" * len(head)]
    for row, r in res["rows"].items():
        if "error" in r:
            lines.append(f"{row:<9} ERROR: {r['error']}")
            continue
        rate = r["msgs_per_s"]
        rate_s = f"{rate:9,.0f}" if rate else f"{'-':>9}"
        ratio = f"{r['vs_raw'] * 100:6.0f}%" if r["vs_raw"] else f"{'-':>7}"
        recv = f"{r['received']:,}/{n:,}"
        wall = f"{r['seconds']:7.2f}" if r["seconds"] else f"{'-':>7}"
        per = (r["sender_cpu_s"] + r["receiver_cpu_s"]) / n * 1e6
        lines.append(
            f"{row:<9} {rate_s} {ratio} {recv:>15} {wall} {r['sender_cpu_s']:10.2f} "
            f"{r['receiver_cpu_s']:10.2f} {per:13.1f} {r['server_cpu_s']:12.2f}"
        )
        if r["lost"]:
            lines.append(f"{'':<9} LOST {r['lost']:,} messages")
    t = res["target"]
    if "ours" in res["rows"] and "raw" in res["rows"]:
        mark = "PASS" if t["pass"] else "MISS"
        got = f"{t['ours_vs_raw'] * 100:.0f}%" if t["ours_vs_raw"] else "no rate"
        lines.append(f"target: ours >= {t['ratio'] * 100:.0f}% of raw: {got} {mark}")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=("ejabberd", "prosody"), default="ejabberd")
    ap.add_argument("--messages", type=int, default=20_000, help="messages per row (default 20000)")
    ap.add_argument("--size", type=int, default=100, help="body bytes per message (default 100)")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows (default raw,ours,slixmpp)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are shown (default 3)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a row may take to deliver")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--json-out", default="", help="also write the JSON results to this file")
    ap.add_argument(
        "--profile", default="", help="run the ours workers under cProfile; write .prof files here"
    )
    # The worker side (internal).
    ap.add_argument("--worker", choices=ROWS, help=argparse.SUPPRESS)
    ap.add_argument("--role", choices=("sender", "receiver"), help=argparse.SUPPRESS)
    for name in ("--host", "--domain", "--user", "--password", "--ca-file", "--to", "--profile-out"):
        ap.add_argument(name, default="", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.messages < 1 or args.size < 8 or args.repeat < 1 or args.timeout <= 0:
        ap.error("--messages and --repeat must be at least 1, --size at least 8, --timeout positive")
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in args.rows if r not in ROWS]
    if bad:
        ap.error(f"unknown rows {bad}; choose from {', '.join(ROWS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one end of one row)."""
    args = _parse(argv)
    if args.worker:
        return _worker_main(args)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        res = asyncio.run(run_all(args))
    except KeyboardInterrupt:
        print("interrupted; the server and the workers were stopped", file=sys.stderr)
        return 130
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2) if args.json else render(res))
    failed = any("error" in r or r["lost"] for r in res["rows"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
