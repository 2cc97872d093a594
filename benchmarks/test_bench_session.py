"""Micro-benchmarks of the session's per-stanza work, on the compiled engine.

Run with ``pytest benchmarks/test_bench_session.py``.  Each benchmark is one
piece of what ``python benchmarks/session_bench.py`` times as a whole:

* ``mux``: a :class:`xmpp.mux.ServeMux` routing one received element to a
  typed handler (which reads what the session benchmark's handler reads),
  or finding no handler;
* ``auto-error``: the ``service-unavailable`` reply ``serve`` sends to an
  IQ request nobody answered, from the start element to bytes;
* ``send``: a chat message with a fresh id and a body, from the dataclass to
  bytes;
* ``id``: :func:`xmpp.stanza.new_id`.

Every benchmark checks its result, so a broken path cannot look fast.  No
timing is asserted.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import pytest

from xmpp import session as session_mod
from xmpp import xmlstream
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.stanza import IQ, Condition, ErrorType, IQType, Message, MessageType, StanzaError, new_id
from xmpp.stream import NS_CLIENT, Info
from xmpp.xmlstream import CharData, Name, StartElement

MESSAGE = (
    b"<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' "
    b"id='ktx72v49' type='chat' xml:lang='en'><body>Art thou not Romeo?</body>"
    b"<request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
)
PRESENCE = (
    b"<presence from='juliet@example.com/balcony' to='romeo@example.net' id='p1'>"
    b"<show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>"
)
PING = (
    b"<iq type='get' id='a1b2' from='juliet@example.com/balcony' to='romeo@example.net/orchard'>"
    b"<ping xmlns='urn:xmpp:ping'/></iq>"
)
ROSTER_SET = b"<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>"
PING_NAME = Name("urn:xmpp:ping", "ping")
SESSION = object()  # what the handlers get as the session


def _parse(data: bytes) -> Any:
    p = xmlstream.StreamParser()
    p.feed(Info().header_bytes())
    (el,) = p.feed(data)
    return el


def _in_serve(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``fn`` as serve runs a handler: with the current session set."""
    ctx = contextvars.copy_context()
    ctx.run(session_mod._current.set, SESSION)  # type: ignore[arg-type]

    def run() -> Any:
        return ctx.run(fn)

    return run


@pytest.mark.benchmark(group="mux")
def test_mux_message_to_handler(benchmark: Any) -> None:
    el = _parse(MESSAGE)
    start = el.start
    got: list[Any] = []

    def on_message(msg: Message, element: Any, s: Any) -> None:
        body = element.find("body")
        got.append((msg.from_, msg.type, body.text if body is not None else None, s))

    mux = ServeMux(NS_CLIENT).message_func(None, None, on_message)
    benchmark(_in_serve(lambda: mux.handle_xmpp(el, start)))
    assert got[-1] == (JID.parse("romeo@example.net/orchard"), MessageType.CHAT, "Art thou not Romeo?", SESSION)


@pytest.mark.benchmark(group="mux")
def test_mux_message_by_child(benchmark: Any) -> None:
    el = _parse(MESSAGE)
    start = el.start
    got: list[str] = []
    mux = (
        ServeMux(NS_CLIENT)
        .message_func(MessageType.CHAT, Name("urn:xmpp:receipts", "request"), lambda m, e, s: got.append("receipt"))
        .message_func(None, None, lambda m, e, s: got.append("other"))
    )
    benchmark(_in_serve(lambda: mux.handle_xmpp(el, start)))
    assert set(got) == {"receipt"}


@pytest.mark.benchmark(group="mux")
def test_mux_presence_unhandled(benchmark: Any) -> None:
    el = _parse(PRESENCE)
    start = el.start
    mux = ServeMux(NS_CLIENT).message_func(None, None, lambda m, e, s: None)
    assert benchmark(_in_serve(lambda: mux.handle_xmpp(el, start))) is None


@pytest.mark.benchmark(group="mux")
def test_mux_iq_to_handler(benchmark: Any) -> None:
    el = _parse(PING)
    start = el.start
    got: list[Any] = []

    def on_ping(iq: IQ, element: Any, s: Any) -> None:
        got.append(iq.id)

    mux = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING_NAME, on_ping)
    benchmark(_in_serve(lambda: mux.handle_xmpp(el, start)))
    assert got[-1] == "a1b2"


@pytest.mark.benchmark(group="auto-error")
def test_auto_error_reply(benchmark: Any) -> None:
    start = _parse(ROSTER_SET).start
    enc = xmlstream.Encoder(ns=NS_CLIENT)

    def reply() -> bytes:
        iq = IQ.from_element(start)
        err = StanzaError(ErrorType.CANCEL, Condition.SERVICE_UNAVAILABLE)
        enc.encode(iq.error(err, NS_CLIENT))
        return enc.flush()

    assert benchmark(reply) == (
        b'<iq id="r1" type="error"><error type="cancel">'
        b'<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>'
    )


@pytest.mark.benchmark(group="send")
def test_send_message_bytes(benchmark: Any) -> None:
    peer = JID.parse("romeo@example.net/orchard")
    body = StartElement(Name(NS_CLIENT, "body"))
    payload = (body, CharData("Art thou not Romeo?"), body.end())
    enc = xmlstream.Encoder(ns=NS_CLIENT)

    def send() -> bytes:
        m = Message(to=peer, type=MessageType.CHAT)
        m.id = new_id()
        enc.encode(m.wrap(payload, NS_CLIENT))
        return enc.flush()

    out = benchmark(send)
    assert out.startswith(b'<message to="romeo@example.net/orchard" id="') and out.endswith(
        b'" type="chat"><body>Art thou not Romeo?</body></message>'
    )


@pytest.mark.benchmark(group="id")
def test_new_id(benchmark: Any) -> None:
    ids = [benchmark(new_id), new_id(), new_id()]
    assert len(set(ids)) == 3 and all(len(i) == 16 for i in ids)
