"""XEP-0092 software version over in-memory sessions."""

from __future__ import annotations

from typing import Any

import pytest

from xmpp import version
from xmpp.mux import ServeMux
from xmpp.stanza import Condition, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import Element

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


async def test_get_and_answer_both_ways() -> None:
    smux = ServeMux(NS_CLIENT, version.handle("srv", "2.0", "Linux"))
    cmux = ServeMux(NS_CLIENT, version.handle("cli", "0.1"))
    async with client_server_pair(client_handler=cmux, server_handler=smux) as (client, server):
        assert await version.get(client, None, timeout=5) == version.Version("srv", "2.0", "Linux")
        assert await version.get(server, "test@example.net/client", timeout=5) == version.Version("cli", "0.1")
    assert smux.disco_features() == [version.NS]


async def test_no_handler_is_an_error() -> None:
    async with client_server_pair() as (client, _server):
        with pytest.raises(StanzaError) as err:
            await version.get(client, "example.net", timeout=5)
        assert err.value.condition is Condition.SERVICE_UNAVAILABLE


def test_parse_the_xep_example(engine: Any) -> None:
    xml = (b"<query xmlns='jabber:iq:version'><name>Exodus</name><version>0.7.0.4</version>"
           b"<os>Windows-XP 5.01.2600</os></query>")
    el = engine.StreamParser().feed(HEADER + xml)[1]
    assert version.Version.from_element(el) == version.Version("Exodus", "0.7.0.4", "Windows-XP 5.01.2600")
    partial = engine.StreamParser().feed(HEADER + b"<query xmlns='jabber:iq:version'><name>X</name></query>")[1]
    assert version.Version.from_element(partial) == version.Version("X", "")
    with pytest.raises(ValueError):
        version.Version.from_element(engine.StreamParser().feed(HEADER + b"<query xmlns='other'/>")[1])


def test_os_is_left_out_when_empty() -> None:
    el = Element.from_tokens(version.Version("a", "1").tokens())
    assert el.find("os", version.NS) is None and el.find("name", version.NS) is not None
