"""Session throughput, side by side: ours against slixmpp, from the same run.

Three paths of a session are timed, each in the same process and round-robin
over ``--repeat`` rounds; the table shows medians of the process's CPU time
(wall time is too noisy on a shared machine, and every row runs on one core).

Receive (``benchmarks/corpus.py``: a realistic client stream, about 400 bytes
a stanza, fed in 4 KiB chunks after its header; one loop iteration per chunk,
as a socket delivers them):

- ``xmpp engine alone``: our ``StreamParser`` reading each top-level
  element's name and attributes -- the bound every receive row of ours sits
  under, shown for information.
- ``xmpp session -> ServeMux -> handler``: the chunks go to the protocol of
  the client session of a negotiated :func:`xmpp.testing.client_server_pair`
  (``data_received``); ``serve`` hands every element to a
  :class:`xmpp.mux.ServeMux` whose only handler takes every message and
  reads ``from_``, ``type`` and the text of ``<body/>``.  IQ gets and sets
  nobody handles are answered ``service-unavailable``, as ``serve`` always
  does.
- ``slixmpp XMLStream (bare core)``: slixmpp's ``XMLStream`` fed the same
  chunks through its real ``data_received``: its parser, its stanza objects
  and its (empty) handler matching; an ``in`` filter counts the stanzas.
- ``slixmpp ClientXMPP``: a ``ClientXMPP(jid, password)`` as constructed,
  with its default handlers (roster, presence, unhandled IQs answered), and a
  handler of every message (a ``Callback`` matching ``{jabber:client}message``:
  its ``message`` event fires only for messages with a body) reading
  ``from``, ``type`` and ``body``.

Both message handlers add up the same checksum (messages, chat messages,
messages with a sender, characters of body text); it must equal the one
computed from the corpus with pyexpat, or the run stops.

Send (into an in-memory transport that nobody reads):

- ``xmpp send(Message)``: ``send(Message(to=..., type=chat))`` on a
  negotiated session: an id is added, the stanza encoded and written.
- ``xmpp send_message(Message, body)``: the same with a ``<body/>`` payload.
- ``slixmpp make_message().send()``: a ``ClientXMPP``'s message with a body
  through its send queue and filters (the time runs until the queue is empty).

IQ round trips (``--inflight`` requests pipelined, each waiting for its
reply):

- ``xmpp send_iq over client_server_pair``: ping requests from the client
  session, answered by a ServeMux IQ handler on the server session, over the
  in-memory pipe.
- ``slixmpp Iq.send between two streams``: two ``ClientXMPP`` connected by an
  in-memory pipe that delivers like ours (writes of one loop iteration
  coalesced); XEP-0199 registered on both; the client awaits ``iq.send()``.

Targets (compiled engine, one core): receive at least 100,000 stanzas/s;
send at least 150,000 stanzas/s (applied to ``send_message`` with a body,
the row slixmpp's is comparable with); IQ round trips at least 30,000/s.

Run: ``python benchmarks/session_bench.py [--stanzas N] [--send N] [--iq N]
[--inflight K] [--repeat K] [--no-slixmpp] [--json]``.  Nothing here
asserts a time; ``tests/test_session_bench.py`` runs it with tiny sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any
from xml.parsers import expat

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import corpus  # noqa: E402

from xmpp import xmlstream  # noqa: E402
from xmpp.jid import JID  # noqa: E402
from xmpp.mux import ServeMux  # noqa: E402
from xmpp.stanza import IQ, IQType, Message, MessageType  # noqa: E402
from xmpp.stream import NS_CLIENT  # noqa: E402
from xmpp.testing import client_server_pair  # noqa: E402
from xmpp.xmlstream import CharData, Name, StartElement  # noqa: E402

CHUNK = 4096
SEP = "\x01"
PING_NS = "urn:xmpp:ping"
BODY_TEXT = "Art thou not Romeo, and a Montague?"
PEER = "romeo@example.net/orchard"

#: CPU time of this process (see the module documentation).
_clock = time.process_time

#: Targets in stanzas (or round trips) per second.
TARGETS = {
    "receive": ("xmpp session -> ServeMux -> handler", 100_000.0),
    "send": ("xmpp send_message(Message, body)", 150_000.0),
    "iq": ("xmpp send_iq over client_server_pair", 30_000.0),
}

Row = Callable[[], tuple[float, int]]


# ---------------------------------------------------------------------------
# What the corpus holds, computed independently of both libraries.


def expected_counts(stream: bytes) -> dict[str, int]:
    """Count the corpus with pyexpat: stanzas and the message checksum.

    ``messages``, ``chat`` (type ``chat``), ``from`` (with a ``from``) and
    ``body_chars`` (characters of the first ``<body/>`` of each message,
    its direct text) are what both message handlers add up.
    """
    out = {"stanzas": 0, "messages": 0, "chat": 0, "from": 0, "body_chars": 0}
    depth = 0
    in_body = False
    seen_body = False
    msg = f"{NS_CLIENT}{SEP}message"
    body = f"{NS_CLIENT}{SEP}body"

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, in_body, seen_body
        depth += 1
        if depth == 2:
            out["stanzas"] += 1
            if name == msg:
                out["messages"] += 1
                out["chat"] += attrs.get("type") == "chat"
                out["from"] += "from" in attrs
                seen_body = False
            else:
                seen_body = True  # no body to count outside messages
        elif depth == 3 and name == body and not seen_body:
            in_body = True

    def end(name: str) -> None:
        nonlocal depth, in_body, seen_body
        if depth == 3 and in_body:
            in_body = False
            seen_body = True
        depth -= 1

    def chars(text: str) -> None:
        if in_body and depth == 3:
            out["body_chars"] += len(text)

    p = expat.ParserCreate("UTF-8", SEP)
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    p.Parse(stream, False)
    return out


class _Checksum:
    """What a message handler adds up (compared with :func:`expected_counts`)."""

    __slots__ = ("messages", "chat", "from_", "body_chars")

    def __init__(self) -> None:
        self.messages = 0
        self.chat = 0
        self.from_ = 0
        self.body_chars = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "chat": self.chat,
            "from": self.from_,
            "body_chars": self.body_chars,
        }


def _check(label: str, got: _Checksum, want: dict[str, int]) -> None:
    g = got.as_dict()
    w = {k: want[k] for k in g}
    if g != w:
        raise SystemExit(f"{label}: the message handler saw {g}, the corpus holds {w}")


def _split(stream: bytes) -> tuple[bytes, list[bytes]]:
    """The header, and the rest of the stream in chunks."""
    head = len(corpus.HEADER)
    assert stream[:head] == corpus.HEADER
    rest = stream[head:]
    return stream[:head], [rest[i : i + CHUNK] for i in range(0, len(rest), CHUNK)]


async def _until(cond: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Let the loop run until ``cond()`` (bounded: a stuck row fails)."""
    deadline = time.monotonic() + seconds
    n = 0
    while not cond():
        await asyncio.sleep(0)
        n += 1
        if n % 256 == 0 and time.monotonic() > deadline:
            raise SystemExit(f"{what}: not done after {seconds:.0f} s")


def _run(coro: Callable[[], Coroutine[Any, Any, tuple[float, int]]]) -> Row:
    def row() -> tuple[float, int]:
        return asyncio.run(coro())

    return row


# ---------------------------------------------------------------------------
# Ours.


def engine_alone(chunks: list[bytes]) -> tuple[float, int]:
    """Our parser alone: each element's name and attributes are read."""
    p = xmlstream.StreamParser()
    p.feed(corpus.HEADER)
    element = xmlstream.Element
    n = 0
    t0 = _clock()
    for c in chunks:
        for ev in p.feed(c):
            if type(ev) is element:
                ev.name
                ev.attrs
                n += 1
    return _clock() - t0, n


async def ours_receive(chunks: list[bytes], want: dict[str, int]) -> tuple[float, int]:
    """Chunks -> the client session's protocol -> serve -> ServeMux -> handler."""
    seen = _Checksum()
    chat = MessageType.CHAT

    def on_message(msg: Message, el: Any, session: Any) -> None:
        seen.messages += 1
        if msg.type is chat:
            seen.chat += 1
        if msg.from_ is not None:
            seen.from_ += 1
        body = el.find("body")
        if body is not None:
            seen.body_chars += len(body.text)

    mux = ServeMux(NS_CLIENT).message_func(None, None, on_message)
    async with client_server_pair(client_handler=mux) as (client, server):
        # The auto error replies pile up in the pipe: nobody reads them.
        server.transport.pause_reading()
        client.transport.set_write_buffer_limits(high=1 << 40)
        proto: Any = client.transport.get_protocol()
        messages = want["messages"]
        gc.collect()
        t0 = _clock()
        for c in chunks:
            proto.data_received(c)
            await asyncio.sleep(0)
        await _until(lambda: seen.messages >= messages, "xmpp receive")
        dt = _clock() - t0
        server.transport.resume_reading()
    _check("xmpp receive", seen, want)
    return dt, want["stanzas"]


async def ours_send(n: int, payload: bool) -> tuple[float, int]:
    """``send(Message(...))`` (or ``send_message`` with a body) into the pipe."""
    body = StartElement(Name(NS_CLIENT, "body"))
    toks = (body, CharData(BODY_TEXT), body.end())
    peer = JID.parse(PEER)
    chat = MessageType.CHAT
    async with client_server_pair() as (client, server):
        server.transport.pause_reading()
        client.transport.set_write_buffer_limits(high=1 << 40)
        before: int = client.transport.bytes_written  # type: ignore[attr-defined]
        gc.collect()
        t0 = _clock()
        if payload:
            send_message = client.send_message
            for _ in range(n):
                await send_message(Message(to=peer, type=chat), toks)
        else:
            send = client.send
            for _ in range(n):
                await send(Message(to=peer, type=chat))
        await asyncio.sleep(0)  # the session writes what one loop turn sent at its end
        dt = _clock() - t0
        written = client.transport.bytes_written - before  # type: ignore[attr-defined]
        server.transport.resume_reading()
    if written < n * 60:
        raise SystemExit(f"xmpp send: only {written} bytes written for {n} messages")
    return dt, n


async def ours_iq(n: int, inflight: int) -> tuple[float, int]:
    """Pipelined ping round trips from client to server and back."""
    ping = StartElement(Name(PING_NS, "ping"))
    payload = (ping, ping.end())

    def on_ping(iq: IQ, el: Any, s: Any) -> Any:
        return s.send(iq.result())

    mux = ServeMux(NS_CLIENT).iq_func(IQType.GET, ping.name, on_ping)
    done = [0]
    async with client_server_pair(server_handler=mux) as (client, _server):
        left = [n]
        send_iq = client.send_iq

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                reply = await send_iq(IQ(type=IQType.GET), payload)
                if reply.get("type") == "result":
                    done[0] += 1

        gc.collect()
        t0 = _clock()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        dt = _clock() - t0
    return dt, done[0]


# ---------------------------------------------------------------------------
# slixmpp.


def slixmpp_version() -> str | None:
    """slixmpp's version, or ``None`` when it cannot be imported."""
    try:
        import slixmpp
    except ImportError:
        return None
    return str(getattr(slixmpp, "__version__", "?"))


class _Sink:
    """A transport for slixmpp that keeps nothing: ``write`` counts bytes."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _Pipe(_Sink):
    """One end of an in-memory pipe between two slixmpp streams.

    As :func:`xmpp.testing.memory_pipe` does, what is written during one loop
    iteration is delivered, joined, to the peer's ``data_received`` on the
    next one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.peer: Any = None
        self.buf: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if not self.buf:
            self.loop.call_soon(self._deliver)
        self.buf.append(data)

    def _deliver(self) -> None:
        data = b"".join(self.buf)
        self.buf.clear()
        self.peer.data_received(data)


def _quiet_slixmpp() -> None:
    # Its warnings (roster pushes from strangers and the like) are not ours to show.
    logging.getLogger("slixmpp").setLevel(logging.ERROR)


def _client(jid: str) -> Any:
    from slixmpp import ClientXMPP

    _quiet_slixmpp()
    xmpp = ClientXMPP(jid, "password")
    return xmpp


async def slix_bare_receive(header: bytes, chunks: list[bytes], want: dict[str, int]) -> tuple[float, int]:
    """slixmpp's XMLStream, nothing registered: chunks through ``data_received``."""
    from slixmpp.xmlstream import XMLStream

    _quiet_slixmpp()
    xs: Any = XMLStream()
    xs.default_ns = NS_CLIENT
    seen = [0]

    def count(stanza: Any) -> Any:
        seen[0] += 1
        return stanza

    xs.add_filter("in", count)
    xs.connection_made(_Sink(), send_event=False)
    xs.data_received(header)
    stanzas = want["stanzas"]
    gc.collect()
    t0 = _clock()
    for c in chunks:
        xs.data_received(c)
        await asyncio.sleep(0)
    await _until(lambda: seen[0] >= stanzas, "slixmpp bare")
    dt = _clock() - t0
    if seen[0] != stanzas:
        raise SystemExit(f"slixmpp bare: saw {seen[0]} stanzas, expected {stanzas}")
    return dt, seen[0]


async def slix_client_receive(header: bytes, chunks: list[bytes], want: dict[str, int]) -> tuple[float, int]:
    """``ClientXMPP(jid, password)`` with a message handler: chunks through ``data_received``."""
    xmpp = _client("juliet@example.com/balcony")
    seen = _Checksum()

    def on_message(msg: Any) -> None:
        seen.messages += 1
        if msg["type"] == "chat":
            seen.chat += 1
        if msg["from"].full:
            seen.from_ += 1
        seen.body_chars += len(msg["body"])

    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    # A handler of every message (its "message" event fires only for those
    # with a body; receipts and chat states would go unseen).
    xmpp.register_handler(Callback("bench", MatchXPath(f"{{{NS_CLIENT}}}message"), on_message))
    xmpp._always_send_everything = True  # answers to IQs go out as they would when connected
    xmpp.connection_made(_Sink(), send_event=False)
    xmpp.session_bind_event.set()
    sender = asyncio.ensure_future(xmpp.run_filters())
    xmpp.data_received(header)
    messages = want["messages"]
    gc.collect()
    t0 = _clock()
    for c in chunks:
        xmpp.data_received(c)
        await asyncio.sleep(0)
    await _until(lambda: seen.messages >= messages, "slixmpp ClientXMPP")
    await xmpp.waiting_queue.join()
    dt = _clock() - t0
    sender.cancel()
    _check("slixmpp ClientXMPP", seen, want)
    return dt, want["stanzas"]


async def slix_send(n: int) -> tuple[float, int]:
    """``make_message(...).send()`` with a body through a ClientXMPP's send queue."""
    xmpp = _client("juliet@example.com/balcony")
    sink = _Sink()
    xmpp._always_send_everything = True
    xmpp.connection_made(sink, send_event=False)
    sender = asyncio.ensure_future(xmpp.run_filters())
    await asyncio.sleep(0)
    before = sink.written
    make = xmpp.make_message
    gc.collect()
    t0 = _clock()
    for _ in range(n):
        make(mto=PEER, mbody=BODY_TEXT, mtype="chat").send()
    await xmpp.waiting_queue.join()
    dt = _clock() - t0
    sender.cancel()
    if sink.written - before < n * 60:
        raise SystemExit(f"slixmpp send: only {sink.written - before} bytes written for {n} messages")
    return dt, n


async def slix_iq(n: int, inflight: int) -> tuple[float, int]:
    """Pipelined XEP-0199 pings between two ClientXMPP streams in memory."""
    loop = asyncio.get_running_loop()
    client = _client("test@example.net/client")
    server = _client("example.net")
    for x in (client, server):
        x.register_plugin("xep_0199", {"keepalive": False})
        x._always_send_everything = True
    a, b = _Pipe(loop), _Pipe(loop)
    a.peer, b.peer = server, client
    client.connection_made(a, send_event=False)
    server.connection_made(b, send_event=False)
    client.session_bind_event.set()
    senders = [asyncio.ensure_future(x.run_filters()) for x in (client, server)]
    for _ in range(10):  # the stream headers cross
        await asyncio.sleep(0)
    left = [n]
    done = [0]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            iq = client.make_iq_get(ito="example.net")
            iq.enable("ping")
            reply = await iq.send(timeout=60)
            if reply["type"] == "result":
                done[0] += 1

    gc.collect()
    t0 = _clock()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    dt = _clock() - t0
    for s in senders:
        s.cancel()
    return dt, done[0]


# ---------------------------------------------------------------------------


def measure(
    n_stanzas: int,
    n_send: int,
    n_iq: int,
    inflight: int,
    repeat: int,
    slix: bool = True,
) -> dict[str, Any]:
    """Run every row ``repeat`` times, round-robin; return the medians and targets."""
    stream = corpus.make_stream(n_stanzas)
    want = expected_counts(stream)
    if want["stanzas"] != corpus.stanza_count(stream):
        raise SystemExit("expected_counts disagrees with corpus.stanza_count")
    header, chunks = _split(stream)
    version = slixmpp_version() if slix else None

    groups: dict[str, dict[str, tuple[Row, int]]] = {"receive": {}, "send": {}, "iq": {}}
    R, S, Q = groups["receive"], groups["send"], groups["iq"]
    stz = want["stanzas"]
    R["xmpp engine alone (bound)"] = (lambda: engine_alone(chunks), stz)
    R["xmpp session -> ServeMux -> handler"] = (_run(lambda: ours_receive(chunks, want)), stz)
    S["xmpp send(Message)"] = (_run(lambda: ours_send(n_send, False)), n_send)
    S["xmpp send_message(Message, body)"] = (_run(lambda: ours_send(n_send, True)), n_send)
    Q["xmpp send_iq over client_server_pair"] = (_run(lambda: ours_iq(n_iq, inflight)), n_iq)
    if version is not None:
        R["slixmpp XMLStream (bare core)"] = (_run(lambda: slix_bare_receive(header, chunks, want)), stz)
        R["slixmpp ClientXMPP"] = (_run(lambda: slix_client_receive(header, chunks, want)), stz)
        S["slixmpp make_message().send()"] = (_run(lambda: slix_send(n_send)), n_send)
        Q["slixmpp Iq.send between two streams"] = (_run(lambda: slix_iq(n_iq, inflight)), n_iq)

    times: dict[str, list[float]] = {label: [] for g in groups.values() for label in g}
    for _ in range(repeat):
        for g in groups.values():
            for label, (fn, expected) in g.items():
                gc.collect()
                dt, n = fn()
                if n != expected:
                    raise SystemExit(f"{label}: counted {n}, expected {expected}")
                times[label].append(dt)

    results: dict[str, Any] = {
        "stanzas": stz,
        "messages": want["messages"],
        "bytes": len(stream),
        "chunk": CHUNK,
        "send": n_send,
        "iq": n_iq,
        "inflight": inflight,
        "repeat": repeat,
        "python": sys.version.split()[0],
        "compiled": xmlstream.COMPILED,
        "slixmpp": version,
        "rows": {},
        "targets": [],
    }
    for gname, g in groups.items():
        results["rows"][gname] = {}
        for label, (_fn, count) in g.items():
            med = statistics.median(times[label])
            results["rows"][gname][label] = {
                "seconds": med,
                "per_s": count / med if med > 0 else float("inf"),
                "count": count,
            }
    for gname, (label, need) in TARGETS.items():
        value = results["rows"][gname][label]["per_s"]
        results["targets"].append(
            {
                "group": gname,
                "row": label,
                "value": value,
                "need": need,
                "ratio": value / need,
                "pass": value >= need,
            }
        )
    return results


_UNITS = {"receive": "stanzas/s", "send": "stanzas/s", "iq": "round trips/s"}


def render(results: dict[str, Any]) -> str:
    """The table of :func:`measure`'s results."""
    eng = "compiled" if results["compiled"] else "pure"
    slix = results["slixmpp"] or "not run"
    lines = [
        f"# receive: {results['stanzas']} stanzas ({results['messages']} messages), "
        f"{results['bytes'] / 1e6:.1f} MB in {results['chunk']} B chunks; send: {results['send']} "
        f"messages; IQ: {results['iq']} round trips, {results['inflight']} in flight",
        f"# medians of {results['repeat']} rounds of process CPU time; Python {results['python']}, "
        f"{eng} engine, slixmpp {slix}",
    ]
    targets = {t["row"]: t for t in results["targets"]}
    for gname, rows in results["rows"].items():
        ours = targets[TARGETS[gname][0]]["value"]
        lines += ["", f"{gname:<40} {_UNITS[gname]:>14} {'us each':>8} {'ours vs':>8}  target"]
        for label, r in rows.items():
            rate = r["per_s"]
            vs = f"{ours / rate:7.2f}x" if label.startswith("slixmpp") else ""
            t = targets.get(label)
            mark = f"{'PASS' if t['pass'] else 'MISS'} {t['ratio']:.2f} of {t['need']:,.0f}" if t else ""
            lines.append(f"  {label:<38} {rate:>14,.0f} {1e6 / rate:>8.2f} {vs:>8}  {mark}")
    lines += ["", "targets"]
    for t in results["targets"]:
        mark = "PASS" if t["pass"] else "MISS"
        lines.append(
            f"  {mark}  {t['group']:<8} {t['row']:<38} {t['value']:>10,.0f}/s  "
            f"{t['ratio']:.2f}x of {t['need']:,.0f}/s"
        )
    bound = results["rows"]["receive"].get("xmpp engine alone (bound)")
    if bound is not None:
        lines.append(
            f"  note: the engine alone reads this corpus at {bound['per_s']:,.0f} stanzas/s here; "
            "no receive path built on it is faster"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--stanzas", type=int, default=10_000, help="stanzas in the receive corpus (default 10000)")
    ap.add_argument("--send", type=int, default=10_000, help="messages sent per send row (default 10000)")
    ap.add_argument("--iq", type=int, default=3_000, help="IQ round trips per IQ row (default 3000)")
    ap.add_argument("--inflight", type=int, default=100, help="IQs in flight (default 100)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; medians are shown (default 5)")
    ap.add_argument("--no-slixmpp", action="store_true", help="leave out the slixmpp rows")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)
    if min(args.stanzas, args.send, args.iq, args.inflight, args.repeat) < 1:
        ap.error("sizes and --repeat must be positive")
    results = measure(args.stanzas, args.send, args.iq, args.inflight, args.repeat, not args.no_slixmpp)
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
