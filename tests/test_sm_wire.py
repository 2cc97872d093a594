"""Stream management regressions found at 10,000 messages through real servers.

* Each transport write holds whole top-level elements and at most one TLS
  record of plaintext (2**14 bytes), so a connection cut anywhere never
  leaves the peer with half an element.  Prosody 0.12 parses the bytes of a
  resumed stream with the old connection's parser: half a stanza left there
  by a cut made the resumed stream fail with ``not-well-formed``.
* Stanzas the server delivers between bind and ``<enabled/>`` are handed to
  the handler but not counted in ``h``: counting them made the client
  acknowledge more than the server had sent ("handled-count-too-high").
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from test_sm import CLIENT_JID, Peer, SMState, SMStore, connected, fake_auth, turns
from xmpp.bind import bind
from xmpp.jid import JID
from xmpp.negotiator import StreamConfig, StreamFeature
from xmpp.session import Session, SessionState, new_session, receive_session
from xmpp.sm import sm, sm_server
from xmpp.stanza import Message
from xmpp.testing import memory_pipe
from xmpp.xmlstream import CharData, Name, StartElement, StreamParser

RECORD = 2**14
HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


async def test_each_write_holds_whole_elements_within_one_record() -> None:
    state, store = SMState(), SMStore()
    async with connected(state, store) as p:
        writes: list[bytes] = []
        real_write = p.ct.write

        def spy(data: Any) -> None:
            writes.append(bytes(data))
            real_write(data)

        p.ct.write = spy  # type: ignore[method-assign]
        sent = 0
        for i in range(1500):
            # Odd sizes, so that element ends fall anywhere relative to 2**14;
            # one element larger than a record goes out alone.
            body = "x" * (20000 if i == 700 else (i * 37) % 400)
            await p.client.send(_with_body(i, body))
            sent += 1
        await p.client.sm.wait_acked(10)
        await turns()
        assert len(p.got_server) == sent
        stanzas = [w for w in writes if b"<message" in w]
        assert sum(w.count(b"<message") for w in stanzas) == sent
        assert len(stanzas) > 10  # the burst was split
        for w in stanzas:
            n = w.count(b"<message")
            assert len(w) <= RECORD or n == 1, (len(w), n)
            parser = StreamParser()
            parser.feed(HEADER)
            # Every element in the write is complete: a cut after it leaves none half-written.
            assert len(parser.feed(w)) == n


def _with_body(i: int, body: str) -> Any:
    b = StartElement(Name("jabber:client", "body"))
    return Message(id=f"w{i}", to=JID.parse("bob@example.net"), type="chat").wrap([b, CharData(body), b.end()])


def _bind_then_deliver(ids: list[str]) -> StreamFeature:
    """The server's bind, after which the server at once delivers ``ids`` (as
    a server routes messages to a freshly bound resource before ``<enable/>``)."""
    feature = bind()

    async def negotiate(session: Session, data: Any) -> Any:
        result = await feature.negotiate(session, data)
        for i in ids:
            session.write_raw(b"<message id='%s'/>" % i.encode())
        return result

    return dataclasses.replace(feature, negotiate=negotiate)


async def test_stanzas_before_enabled_are_handled_but_not_counted() -> None:
    state, store = SMState(), SMStore()
    ct, st = memory_pipe()
    scfg = StreamConfig(features=[fake_auth(), _bind_then_deliver(["e1", "e2", "e3"]), sm_server(store)])
    ccfg = StreamConfig(features=[fake_auth(), bind("phone"), sm(state, ack_after=None)])
    server_task = asyncio.ensure_future(receive_session(st, "example.net", config=scfg))
    client = await asyncio.wait_for(new_session(ct, "example.net", origin=CLIENT_JID, config=ccfg), 5)
    server = await asyncio.wait_for(server_task, 5)
    p = Peer(client, server, ct, st)
    p.start()
    try:
        assert client.sm is not None and state.id is not None
        assert state.h_in == 0  # the three came before <enabled/>
        await server.send(Message(id="after"))
        await server.sm.wait_acked(5)  # the client's h matches what the server counted
        await turns()
        assert state.h_in == 1 and server.sm.state.acked == 1
        assert p.got_client == ["e1", "e2", "e3", "after"]
        assert not server.closed and not client.closed
        assert client.state & SessionState.READY
    finally:
        await p.stop()
