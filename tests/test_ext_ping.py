"""XEP-0199 ping over in-memory sessions: both directions, errors, the mux option."""

from __future__ import annotations

import pytest

from xmpp import ping
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.stanza import IQ, Condition, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair


async def test_client_pings_server_and_gets_a_round_trip() -> None:
    seen: list[IQ] = []
    server_mux = ServeMux(NS_CLIENT, ping.handle(ping.Handler(on_ping=seen.append)))
    async with client_server_pair(server_handler=server_mux) as (client, _server):
        rtt = await ping.send(client, timeout=5)
        assert rtt >= 0.0
        rtt2 = await ping.send(client, "example.net", timeout=5)
        assert rtt2 >= 0.0
    assert len(seen) == 2
    assert seen[0].from_ is None or seen[0].from_ == JID.parse("test@example.net/client")
    assert seen[1].to == JID.parse("example.net")


async def test_server_pings_client() -> None:
    async with client_server_pair(client_handler=ServeMux(NS_CLIENT, ping.handle())) as (client, server):
        assert await ping.send(server, JID.parse("test@example.net/client"), timeout=5) >= 0.0


async def test_ping_without_handler_raises_service_unavailable() -> None:
    async with client_server_pair() as (client, _server):
        with pytest.raises(StanzaError) as info:
            await ping.send(client, timeout=5)
        assert info.value.condition is Condition.SERVICE_UNAVAILABLE


async def test_ping_needs_serve() -> None:
    async with client_server_pair(serve=False) as (client, _server):
        with pytest.raises(RuntimeError):
            await ping.send(client, timeout=1)


def test_handler_declares_the_disco_feature() -> None:
    assert ServeMux(NS_CLIENT, ping.handle()).disco_features() == [ping.NS]
    assert ping.PING.space == "urn:xmpp:ping" and ping.PING.local == "ping"
