"""Session throughput: the receive path, the send path and pipelined IQs.

Run ``python benchmarks/session_bench.py`` for a table of ours beside
slixmpp (when installed) from the same run.  Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import corpus  # noqa: E402

from xmpp import xmlstream  # noqa: E402
from xmpp.mux import ServeMux  # noqa: E402
from xmpp.session import Session, SessionState  # noqa: E402
from xmpp.stanza import IQ, IQType, Message, MessageType  # noqa: E402
from xmpp.stream import NS_CLIENT  # noqa: E402
from xmpp.testing import client_server_pair, memory_pipe  # noqa: E402
from xmpp.xmlstream import CharData, Name, StartElement  # noqa: E402

CHUNK = 4096
BODY = Name(NS_CLIENT, "body")


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


async def receive_path(stream: bytes, expected: int) -> float:
    """Bytes -> session protocol -> ServeMux -> a message handler reading
    from_, type and the body text.  Returns stanzas per second."""
    ta, tb = memory_pipe()
    s = Session(ta, location=None, origin=None, received=False)
    s.state |= SessionState.READY
    s.expect_header()
    seen = [0]
    bodies = [0]

    def on_message(msg: Message, el: Any, sess: Any) -> None:
        seen[0] += 1
        _ = msg.from_, msg.type
        b = el.find("body")
        if b is not None:
            bodies[0] += len(b.text)

    def count(el: Any, start: Any) -> None:
        seen[0] += 1

    mux = ServeMux(NS_CLIENT).message_func(None, None, on_message)
    counter = {"n": 0}

    class All:
        def handle_xmpp(self, el: Any, start: Any) -> Any:
            counter["n"] += 1
            return mux.handle_xmpp(el, start)

    proto = ta.get_protocol()
    chunks = _chunks(stream)
    proto.data_received(chunks[0])  # the header
    task = asyncio.ensure_future(s.serve(All()))
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    for c in chunks[1:]:
        proto.data_received(c)
        await asyncio.sleep(0)
    while counter["n"] < expected:
        await asyncio.sleep(0)
    dt = time.perf_counter() - t0
    task.cancel()
    try:
        await task
    except BaseException:
        pass
    ta.abort()
    return expected / dt


async def send_path(n: int) -> float:
    """``send(Message(...))`` into an in-memory transport.  Stanzas per second."""
    ta, tb = memory_pipe()
    tb.pause_reading()
    ta.set_write_buffer_limits(high=1 << 40)
    s = Session(ta, location=None, origin=None, received=False)
    s.state |= SessionState.READY
    to = s.local_addr
    from xmpp.jid import JID

    peer = JID.parse("romeo@example.net/orchard")
    body = StartElement(BODY)
    payload = [body, CharData("Art thou not Romeo, and a Montague?"), body.end()]
    t0 = time.perf_counter()
    for i in range(n):
        await s.send_message(Message(to=peer, type=MessageType.CHAT), payload)
    dt = time.perf_counter() - t0
    del to
    ta.abort()
    return n / dt


async def iq_pipeline(n: int, inflight: int) -> float:
    """Pipelined IQ round trips over client_server_pair.  Round trips per second."""
    ping = StartElement(Name("urn:xmpp:ping", "ping"))
    payload = (ping, ping.end())

    def on_ping(iq: IQ, el: Any, s: Any) -> Any:
        return s.send(iq.result())

    mux = ServeMux(NS_CLIENT).iq_func("get", ping.name, on_ping)
    async with client_server_pair(server_handler=mux) as (c, _s):
        left = [n]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                await c.send_iq(IQ(type=IQType.GET), payload)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        dt = time.perf_counter() - t0
    return n / dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stanzas", type=int, default=50_000)
    ap.add_argument("--iq", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    stream = corpus.make_stream(args.stanzas)
    expected = corpus.stanza_count(stream)
    rows: dict[str, list[float]] = {"receive": [], "send": [], "iq": []}
    for _ in range(args.repeat):
        rows["receive"].append(asyncio.run(receive_path(stream, expected)))
        rows["send"].append(asyncio.run(send_path(args.stanzas)))
        rows["iq"].append(asyncio.run(iq_pipeline(args.iq, 100)))
    med = {k: statistics.median(v) for k, v in rows.items()}
    if args.json:
        print(json.dumps({"compiled": xmlstream.COMPILED, **med}))
    else:
        print(f"engine: {'compiled' if xmlstream.COMPILED else 'pure'}")
        for k, v in med.items():
            print(f"{k:10s} {v:12,.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
