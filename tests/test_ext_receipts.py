"""XEP-0184 receipts over in-memory sessions: request, answer, await, refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xmpp import receipts
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import Message, MessageType, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import CharData, Element, Name, StartElement

BODY = Name(NS_CLIENT, "body")
CLIENT = JID.parse("test@example.net/client")


def body(text: str) -> list[Any]:
    s = StartElement(BODY)
    return [s, CharData(text), s.end()]


async def test_receipt_is_answered_and_awaited() -> None:
    got: list[tuple[str, str]] = []
    smux = ServeMux(NS_CLIENT, receipts.handle(receipts.Handler(on_receipt=lambda m, rid: got.append((str(m.from_), rid)))))
    cmux = ServeMux(NS_CLIENT, receipts.handle())
    async with client_server_pair(client_handler=cmux, server_handler=smux) as (client, server):
        msg = Message(to=CLIENT, type=MessageType.CHAT)
        receipt = await receipts.send_with_receipt(server, msg, body("hi"), timeout=5)
        assert receipts.received_id(receipt) == msg.id and msg.id
        assert receipt.get("from") in (None, str(CLIENT))
    assert got == [("None", msg.id)]


async def test_no_answer_for_error_groupchat_or_idless() -> None:
    sent: list[Element] = []

    async def record(el: Element, start: Any) -> None:
        if el.name.local == "message":
            sent.append(el)

    cmux = ServeMux(NS_CLIENT, receipts.handle())
    async with client_server_pair(client_handler=cmux, server_handler=record) as (client, server):
        for typ in (MessageType.ERROR, MessageType.GROUPCHAT):
            await server.send_message(Message(to=CLIENT, from_=JID.parse("room@example.net/x"), type=typ, id="m1"),
                                      receipts.request())
        # A message without an id (written raw: send() would add one).
        server.write_raw(b"<message to='test@example.net/client' from='a@example.net/r'>"
                         b"<request xmlns='urn:xmpp:receipts'/></message>")
        # Then one that is answered: receipts come back in order after it.
        await server.send_message(Message(to=CLIENT, from_=JID.parse("a@example.net/r"), id="ok"), receipts.request())
        for _ in range(200):
            if sent:
                break
            await asyncio.sleep(0.01)
    assert [receipts.received_id(e) for e in sent] == ["ok"]
    assert sent[0].get("to") == "a@example.net/r"


async def test_should_answer_can_refuse() -> None:
    asked: list[Message] = []

    def never(m: Message) -> bool:
        asked.append(m)
        return False

    cmux = ServeMux(NS_CLIENT, receipts.handle(receipts.Handler(should_answer=never)))
    smux = ServeMux(NS_CLIENT, receipts.handle())
    async with client_server_pair(client_handler=cmux, server_handler=smux) as (client, server):
        with pytest.raises(TimeoutError):
            await receipts.send_with_receipt(server, Message(to=CLIENT), body("x"), timeout=0.2)
    assert len(asked) == 1


async def test_receipt_from_someone_else_does_not_count() -> None:
    async def forge(msg: Message, el: Element, s: Session) -> None:
        # Answer with a receipt claiming to come from another resource.
        await s.send(Message(to=msg.from_, from_=JID.parse("test@example.net/other")).wrap(receipts.received(msg.id)))

    cmux = ServeMux(NS_CLIENT).message_func(None, receipts.REQUEST, forge)
    smux = ServeMux(NS_CLIENT, receipts.handle())
    async with client_server_pair(client_handler=cmux, server_handler=smux) as (client, server):
        with pytest.raises(TimeoutError):
            await receipts.send_with_receipt(server, Message(to=CLIENT), body("x"), timeout=0.3)
        # Sent to the bare JID, any resource's receipt counts.
        el = await receipts.send_with_receipt(server, Message(to=CLIENT.bare()), body("y"), timeout=5)
        assert el.get("from") == "test@example.net/other"


async def test_an_error_bounce_raises() -> None:
    async def bounce(msg: Message, el: Element, s: Session) -> None:
        err = StanzaError("cancel", "service-unavailable")
        # The bounce carries the original payload, as servers return it.
        toks = list(Message(to=msg.from_, from_=msg.to, id=msg.id, type=MessageType.ERROR).wrap(
            [*receipts.request(), *err.tokens(s.stanza_ns)]))
        await s.send(toks)

    cmux = ServeMux(NS_CLIENT).message_func(None, receipts.REQUEST, bounce)
    smux = ServeMux(NS_CLIENT, receipts.handle())
    async with client_server_pair(client_handler=cmux, server_handler=smux) as (client, server):
        with pytest.raises(StanzaError) as info:
            await receipts.send_with_receipt(server, Message(to=CLIENT), body("x"), timeout=5)
        assert info.value.condition.value == "service-unavailable"


async def test_groupchat_requests_are_refused() -> None:
    async with client_server_pair() as (client, _server):
        with pytest.raises(ValueError):
            await receipts.send_with_receipt(client, Message(to=JID.parse("room@example.net"), type=MessageType.GROUPCHAT))


async def test_answer_from_another_handler() -> None:
    """A body handler that takes the message first can still answer the request."""
    async def on_body(msg: Message, el: Element, s: Session) -> None:
        await receipts.answer(msg, el, s)

    cmux = ServeMux(NS_CLIENT, receipts.handle()).message_func(None, BODY, on_body)
    smux = ServeMux(NS_CLIENT, receipts.handle())
    async with client_server_pair(client_handler=cmux, server_handler=smux) as (client, server):
        # The body comes first: the mux routes the message to on_body.
        el = await receipts.send_with_receipt(server, Message(to=CLIENT, type=MessageType.CHAT), body("z"), timeout=5)
        assert receipts.received_id(el)
