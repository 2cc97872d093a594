"""Benchmarks of stanza values: reading, writing, errors; beside slixmpp's stanzas.

Run with ``pytest benchmarks/test_bench_stanza.py``.  Groups:

* ``read-message`` and ``read-iq``: typed attributes (addresses, id, type,
  language) from an element the engine already parsed, as a session does
  for every received stanza.  Ours reads elements of the compiled engine
  and of the pure twin; slixmpp reads an ElementTree element through its
  stanza interface (``msg['to']`` and so on).
* ``write-message``: a chat message with a body to bytes.
* ``error``: an IQ error reply made and read back from its element.

Addresses are parsed once before the timing starts, so the figures are those
of a stream where the same peers keep talking (both libraries cache or
intern addresses in some form).
"""

from __future__ import annotations

import types
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import xmpp._tokens_py as pure
from xmpp import xmlstream
from xmpp.jid import JID
from xmpp.stanza import IQ, Condition, ErrorType, IQType, Message, MessageType, StanzaError
from xmpp.stream import NS_CLIENT, Info

MESSAGE = (
    b"<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' "
    b"id='ktx72v49' type='chat' xml:lang='en'><body>Art thou not Romeo?</body></message>"
)
IQ_GET = (
    b"<iq to='juliet@example.com/balcony' from='romeo@example.net/orchard' "
    b"id='v1x9a' type='get'><query xmlns='jabber:iq:version'/></iq>"
)

ENGINES = {"compiled": xmlstream, "pure": pure}


def _parse(engine: types.ModuleType, data: bytes) -> Any:
    p = engine.StreamParser()
    p.feed(Info().header_bytes())
    (el,) = p.feed(data)
    return el


def _slix() -> Any:
    try:
        from slixmpp.stanza import Iq as SlixIq
        from slixmpp.stanza import Message as SlixMessage
    except ImportError:
        return None
    return SlixMessage, SlixIq


SLIX = _slix()
need_slix = pytest.mark.skipif(SLIX is None, reason="slixmpp is not importable")


def _slix_tree(data: bytes) -> ET.Element:
    return ET.fromstring(data.replace(b"<message ", b"<message xmlns='jabber:client' ", 1)
                         .replace(b"<iq ", b"<iq xmlns='jabber:client' ", 1))


# --- read ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.benchmark(group="read-message")
def test_read_message_ours(benchmark: Any, engine: str) -> None:
    el = _parse(ENGINES[engine], MESSAGE)
    got = benchmark(Message.from_element, el)
    assert got.to == JID.parse("juliet@example.com/balcony")
    assert got.type is MessageType.CHAT


@need_slix
@pytest.mark.benchmark(group="read-message")
def test_read_message_slixmpp(benchmark: Any) -> None:
    tree = _slix_tree(MESSAGE)
    cls = SLIX[0]

    def read() -> tuple[Any, ...]:
        m = cls(xml=tree)
        return (m["to"], m["from"], m["id"], m["type"], m["lang"])

    got = benchmark(read)
    assert str(got[0]) == "juliet@example.com/balcony" and got[3] == "chat"


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.benchmark(group="read-iq")
def test_read_iq_ours(benchmark: Any, engine: str) -> None:
    el = _parse(ENGINES[engine], IQ_GET)
    got = benchmark(IQ.from_element, el)
    assert got.type is IQType.GET and got.id == "v1x9a"


@need_slix
@pytest.mark.benchmark(group="read-iq")
def test_read_iq_slixmpp(benchmark: Any) -> None:
    tree = _slix_tree(IQ_GET)
    cls = SLIX[1]

    def read() -> tuple[Any, ...]:
        iq = cls(xml=tree)
        return (iq["to"], iq["from"], iq["id"], iq["type"], iq["lang"])

    got = benchmark(read)
    assert got[3] == "get"


# --- write --------------------------------------------------------------------------

_BODY = xmlstream.Name(NS_CLIENT, "body")


@pytest.mark.benchmark(group="write-message")
def test_write_message_ours(benchmark: Any) -> None:
    to = JID.parse("juliet@example.com/balcony")

    def write() -> bytes:
        m = Message(to=to, id="ktx72v49", type=MessageType.CHAT)
        enc = xmlstream.Encoder(ns=NS_CLIENT)
        enc.encode(
            m.wrap(
                (
                    xmlstream.StartElement(_BODY),
                    xmlstream.CharData("Art thou not Romeo?"),
                    xmlstream.EndElement(_BODY),
                )
            )
        )
        return enc.flush()

    assert benchmark(write).startswith(b'<message to="juliet@example.com/balcony"')


@need_slix
@pytest.mark.benchmark(group="write-message")
def test_write_message_slixmpp(benchmark: Any) -> None:
    cls = SLIX[0]

    def write() -> bytes:
        m = cls()
        m["to"] = "juliet@example.com/balcony"
        m["id"] = "ktx72v49"
        m["type"] = "chat"
        m["body"] = "Art thou not Romeo?"
        return str(m).encode()

    assert b"Art thou not Romeo?" in benchmark(write)


# --- errors --------------------------------------------------------------------------


@pytest.mark.benchmark(group="error")
def test_error_reply_round_trip_ours(benchmark: Any) -> None:
    req = IQ.from_element(_parse(xmlstream, IQ_GET))
    err = StanzaError(ErrorType.CANCEL, Condition.SERVICE_UNAVAILABLE, "not here", "en")

    def run() -> StanzaError | None:
        el = xmlstream.Element.from_tokens(req.error(err))
        return StanzaError.from_stanza(el)

    assert benchmark(run) == err
