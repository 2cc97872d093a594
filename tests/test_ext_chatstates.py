"""XEP-0085 chat states: build, parse, route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xmpp import chatstates
from xmpp.chatstates import State
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import Message, MessageType
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import Element

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


@pytest.mark.parametrize("state", list(State))
def test_each_state_round_trips(engine: Any, state: State) -> None:
    el = Element.from_tokens(Message(type=MessageType.CHAT).wrap(state.tokens()))
    assert chatstates.parse(el) is state
    xml = f"<message type='chat'><body>x</body><{state.value} xmlns='{chatstates.NS}'/></message>"
    parsed = engine.StreamParser().feed(HEADER + xml.encode())[1]
    assert chatstates.parse(parsed) is state
    assert State.from_element(Element.from_tokens(state.tokens())) is state


def test_not_a_state(engine: Any) -> None:
    el = engine.StreamParser().feed(HEADER + f"<message><typing xmlns='{chatstates.NS}'/></message>".encode())[1]
    assert chatstates.parse(el) is None
    with pytest.raises(ValueError):
        State.from_element(next(el.children()))
    assert [s.value for s in State] == ["active", "composing", "paused", "inactive", "gone"]


async def test_send_and_route() -> None:
    got: asyncio.Queue[tuple[State, MessageType]] = asyncio.Queue()

    def on_state(msg: Message, state: State, s: Session) -> None:
        got.put_nowait((state, msg.type))

    cmux = ServeMux(NS_CLIENT, chatstates.handle(on_state))
    assert cmux.disco_features() == [chatstates.NS]
    async with client_server_pair(client_handler=cmux) as (client, server):
        to = JID.parse("test@example.net/client")
        await chatstates.send(server, to, State.COMPOSING)
        await chatstates.send(server, "test@example.net/client", State.PAUSED, MessageType.GROUPCHAT)
        # An error message carrying a state is not a state change.
        await server.send_message(Message(to=to, type=MessageType.ERROR), State.GONE.tokens())
        await chatstates.send(server, to, State.ACTIVE)
        seen = [await asyncio.wait_for(got.get(), 5) for _ in range(3)]
    assert seen == [(State.COMPOSING, MessageType.CHAT), (State.PAUSED, MessageType.GROUPCHAT),
                    (State.ACTIVE, MessageType.CHAT)]
