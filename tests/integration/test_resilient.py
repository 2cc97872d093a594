"""ResilientClient (xmpp.resilient) against Prosody and ejabberd through the fault proxy.

A sends 10,000 messages to B; tests/adversity.py's FaultProxy cuts A's
connection, and B's, at random bytes several times over the whole run.
Both are ResilientClients: they reconnect, resume (or renegotiate) and send
again what was not acknowledged.  B must receive every message, exactly
once after de-duplication by XEP-0359 origin-id, and A's view of what the
server acknowledged must match what it sent.

XMPP has no end-to-end flow control, and both servers bound what they hold
for a client that has not acknowledged it: Prosody's mod_smacks keeps at
most 500 unacknowledged stanzas (``smacks_max_queue_size``; past that the
oldest are overwritten and the stream can no longer be resumed), ejabberd
closes a session with more than 5,000 (``max_ack_queue``: policy-violation
"Too many unacked stanzas", and the queue is dropped).  A sender that runs
further ahead of an absent receiver loses messages by the server's policy,
whatever the clients do.  So A, like an application that waits for
receipts, stays within ``WINDOW`` messages of what B has received.

Prosody 0.12 feeds the bytes of a resumed connection to the XML parser of
the connection it replaces (mod_c2s's ``session.data`` keeps the old
parser).  When that connection died with part of a stanza read, the resumed
stream fails at once with ``not-well-formed``: A then binds anew and sends
again what was not acknowledged (B drops any duplicate by origin-id).  The
session writes whole elements per TLS record, which keeps that rare.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random

import pytest

from xmpp import sid
from xmpp.jid import JID
from xmpp.resilient import EventKind, QueueFull, ResilientClient
from xmpp.sasl import SASLError
from xmpp.session import Session
from xmpp.stanza import Message, MessageType, Presence
from xmpp.stream import StreamError
from xmpp.xmlstream import Element, StartElement

import adversity  # tests/adversity.py (tests/ is on sys.path)
from . import servers

TIMEOUT = 10.0
#: Messages A may have sent that B has not received yet (well below both
#: servers' queue limits, see the module documentation).
WINDOW = 200


def resilient(
    server: servers.XMPPServer,
    pki: servers.Pki,
    user: str,
    resource: str,
    port: int,
    ping_interval: float | None = None,
    **kw: object,
) -> ResilientClient:
    async def presence(session: Session, resumed: bool) -> None:
        if not resumed:  # a resumed stream keeps its presence
            await session.send(Presence())

    return ResilientClient(
        JID(user, server.domain, resource),
        server.users[user],
        host=server.host,
        port=port,
        tls_context=pki.client_context(),
        timeout=TIMEOUT,
        backoff_base=0.1,
        backoff_max=1.0,
        ack_every=32,
        ack_after=0.5,
        keepalive=None,
        ping_interval=ping_interval,
        ping_timeout=3.0,
        on_session=presence,
        rng=random.Random(0),
        **kw,  # type: ignore[arg-type]
    )


def _story(c: ResilientClient, t0: float) -> str:
    """What happened to ``c``, for a failure message: each event, when, and why."""
    out = []
    for e in c.events:
        why = "" if e.error is None else f" {type(e.error).__name__}({e.error})"
        out.append(f"{e.at - t0:.1f}s {e.kind.value}{why}")
    return ", ".join(out)


async def test_10000_messages_through_cuts_on_both_sides(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    total = 10_000
    rng = random.Random(7)
    # A writes about 1.4 MB: each of its first five connections is cut after
    # 30 to 330 kB, so the cuts fall all over the run.
    a_cuts = [rng.randrange(30_000, 330_000) for _ in range(5)]
    # B mostly reads: its first two connections are cut after a few kB (some
    # in the middle of negotiation or resumption), and the test cuts every
    # connection of B three more times while messages flow to it.
    b_cuts = [rng.randrange(4500, 7000) for _ in range(2)]
    b_cut_at = {total // 4, total // 2, (3 * total) // 4}
    counts: collections.Counter[str] = collections.Counter()
    changed = asyncio.Event()

    def on_message(el: Element, start: StartElement) -> None:
        if start.name.local == "message":
            oid = sid.origin_id(el)
            if oid is not None:
                counts[oid] += 1
                changed.set()

    async with adversity.FaultProxy(xmpp_server.host, xmpp_server.c2s_port, cuts=a_cuts) as pa, adversity.FaultProxy(
        xmpp_server.host, xmpp_server.c2s_port, cuts=b_cuts
    ) as pb:
        b = resilient(xmpp_server, pki, "bob", "rb", pb.port, handler=on_message)
        # A pings when the server has been silent for 3 s: after a resumption
        # on Prosody whose old parser was left inside a stanza, what A sends
        # disappears into that stanza without an error, and only liveness
        # notices (then A reconnects and sends again what was not acknowledged).
        a = resilient(xmpp_server, pki, "alice", "ra", pa.port, ping_interval=3.0)
        acked: list[str] = []  # ids of A's messages, as the server acknowledged them
        # A's other stanzas: a presence per session that was not resumed, and
        # the liveness pings a dead stream left unacknowledged (sent again).
        acked_other: list[str] = []

        def on_ack(start: StartElement | None) -> None:
            if start is not None and start.name.local == "message":
                acked.append(start.get("id") or "")
            else:
                acked_other.append("" if start is None else start.name.local)

        a.state.on_ack = on_ack
        b_task = asyncio.ensure_future(b.run())
        a_task = asyncio.ensure_future(a.run())
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await b.wait_connected(TIMEOUT * 2)
            await a.wait_connected(TIMEOUT * 2)
            to = JID("bob", xmpp_server.domain, "rb")
            sent: list[str] = []
            deadline = loop.time() + 120
            for i in range(total):
                while len(sent) - len(counts) >= WINDOW:  # B is behind (or away): wait for it
                    left = deadline - loop.time()
                    assert left > 0, (
                        f"only {i} of {total} sent in time, B has {len(counts)}; "
                        f"A: {_story(a, started)}; B: {_story(b, started)}; "
                        f"A unacked {len(a.state.unacked)}, queued {a.queued}"
                    )
                    changed.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(changed.wait(), min(left, 1.0))
                oid, toks = sid.with_origin_id(Message(to=to, type=MessageType.CHAT, id=f"m{i}-{rng.getrandbits(32):x}"))
                el = Element.from_tokens(list(toks))
                while True:
                    try:
                        await a.send(el)
                        break
                    except QueueFull:  # the documented backpressure: wait for a connection
                        await a.wait_connected(TIMEOUT * 3)
                        await asyncio.sleep(0.005)  # and let the new one drain the queue
                sent.append(oid)
                if i % 20 == 0:
                    await asyncio.sleep(0)  # let the stream flow (and the proxy cut it)
                if i in b_cut_at:
                    await b.wait_connected(TIMEOUT * 3)
                    pb.cut_all()  # B loses its connection while messages flow to it
            await a.flush(90)
            want = set(sent)
            while not want <= counts.keys():
                left = deadline - loop.time()
                if left <= 0:
                    pytest.fail(f"{len(want - counts.keys())} of {total} messages never reached B")
                changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(left, 5))
            await b.flush(TIMEOUT)
            await asyncio.sleep(0.3)  # a duplicate would come right behind
        finally:
            elapsed = loop.time() - started
            await a.stop(timeout=3)
            await b.stop(timeout=3)
            await asyncio.wait([a_task, b_task], timeout=10)
        dups = sum(c - 1 for c in counts.values())
        why = collections.Counter(
            type(e.error).__name__ + (f"({e.error.condition.value})" if isinstance(e.error, StreamError) else "")
            for e in a.events
            if e.kind is EventKind.DISCONNECTED
        )
        print(
            f"\n{type(xmpp_server).__name__}: {total} messages in {elapsed:.1f} s; A: {pa.cut_count} cuts, "
            f"{a.resumptions} of {a.connections - 1} reconnections resumed; B: {pb.cut_count} cuts, "
            f"{b.resumptions} of {b.connections - 1} resumed; {dups} duplicates seen by B (dropped by origin-id); A's losses: {dict(why)}"
        )
        for t in (a_task, b_task):
            assert t.done() and t.exception() is None
        # (A connection that Prosody ends with not-well-formed uses up an entry of a_cuts.)
        assert pa.cut_count >= 3, "the proxy should have cut A several times"
        assert pb.cut_count >= 3 and b.connections >= 4
        # Every message reached B, each exactly once after de-duplication by origin-id.
        assert len(set(sent)) == total and set(counts) >= set(sent)
        # A's view: each stanza acknowledged once, nothing left over.
        assert not a.state.unacked and a.queued == 0
        assert sorted(acked) == sorted(sent)
        assert a.state.acked == total + len(acked_other)
        assert set(acked_other) <= {"presence", "iq"}
        assert a.connections >= pa.cut_count + 1
        assert a.resumptions >= 1


async def test_wrong_password_stops_without_retrying(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    client = ResilientClient(
        JID("alice", xmpp_server.domain, "bad"),
        "not the password",
        host=xmpp_server.host,
        port=xmpp_server.c2s_port,
        tls_context=pki.client_context(),
        timeout=TIMEOUT,
        backoff_base=0.01,
    )
    with pytest.raises(SASLError) as info:
        await asyncio.wait_for(client.run(), TIMEOUT * 2)
    assert info.value.condition == "not-authorized"
    assert [e.kind for e in client.events] == [EventKind.FAILED]
