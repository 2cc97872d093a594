"""The first-tier extensions against Prosody, ejabberd and slixmpp (issue 9).

Against both servers (``xmpp_server``): XEP-0199 ping of the server,
XEP-0030 disco#info of the server and of the account, XEP-0092 version
and XEP-0202 time of the server where the server offers them (its disco
says), XEP-0184 receipts between two of our clients through the server,
and XEP-0115 caps: our ``<c/>`` travels in a presence through the server to
another of our resources, which fetches, verifies and caches our
capabilities.

Against slixmpp, through :class:`xmpp.testing.Server`: pings both ways,
slixmpp reading our disco#info and verifying our caps with its own
XEP-0115 code, our side verifying slixmpp's caps, and software version
queries both ways.

Every network wait is bounded (``TIMEOUT``); every session is closed and
slixmpp disconnected when a test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from xmpp import caps, disco, ping, receipts, version
from xmpp import time as xtime
from xmpp.client import dial_client_session
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import Condition, Message, MessageType, Presence, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import Server
from xmpp.xmlstream import CharData, Element, Name, StartElement

from . import servers
from .test_c2s import TIMEOUT, bounded, login
from .test_slixmpp import slix_client

CAPS_NODE = "https://example.org/xmpp-python-tests"
BODY = Name(NS_CLIENT, "body")
USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def our_mux(name: str = "xmpp-tests") -> ServeMux:
    """The handlers a client of ours runs: ping, version, time, receipts and disco with caps."""
    return ServeMux(
        NS_CLIENT,
        ping.handle(),
        version.handle(name, "1.0"),
        xtime.handle(),
        receipts.handle(),
        disco.handle(identities=[disco.Identity("client", "bot", name)], caps_node=CAPS_NODE),
    )


@contextlib.asynccontextmanager
async def served(session: Session, mux: ServeMux) -> AsyncIterator[Session]:
    """``session`` with ``serve(mux)`` running; closed, and serve joined, at the end."""
    task = asyncio.ensure_future(session.serve(mux))
    await asyncio.sleep(0)
    try:
        yield session
    finally:
        await bounded(session.close(timeout=TIMEOUT / 2), "closing our session")
        done, _ = await asyncio.wait([task], timeout=TIMEOUT)
        if not done:
            task.cancel()
            pytest.fail("serve did not end after the session was closed")
        exc = task.exception()
        if exc is not None and not isinstance(exc, (ConnectionError, OSError)):
            raise exc


def body(text: str) -> list[Any]:
    """The tokens of a ``<body/>`` holding ``text``."""
    s = StartElement(BODY)
    return [s, CharData(text), s.end()]


# ------------------------------------------------------------------ servers


async def test_ping_the_server(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """XEP-0199: the server answers pings to its domain and to no address at all."""
    async with served(await login(xmpp_server, pki), our_mux()) as s:
        assert await bounded(ping.send(s, xmpp_server.domain, timeout=TIMEOUT), "ping") >= 0.0
        assert await bounded(ping.send(s, None, timeout=TIMEOUT), "ping without to") >= 0.0
        with pytest.raises(StanzaError):
            await bounded(ping.send(s, f"nobody@{xmpp_server.domain}/gone", timeout=TIMEOUT), "ping of nobody")


async def test_disco_of_the_server_and_of_the_account(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """XEP-0030: the server is server/im with disco#info and ping; the account is account/registered."""
    async with served(await login(xmpp_server, pki), our_mux()) as s:
        info = await bounded(disco.get_info(s, xmpp_server.domain, timeout=TIMEOUT), "disco#info of the server")
        assert disco.Identity("server", "im") in [disco.Identity(i.category, i.type) for i in info.identities]
        assert info.has_feature(disco.NS_INFO) and info.has_feature(ping.NS)
        # Every answer of a real server is one we can hash (and it has no duplicates).
        caps.check(info)
        assert len(caps.ver(info)) == 28

        assert s.local_addr is not None
        account = await bounded(disco.get_info(s, s.local_addr.bare(), timeout=TIMEOUT), "disco#info of the account")
        assert ("account", "registered") in [(i.category, i.type) for i in account.identities]

        items = await bounded(disco.get_items(s, xmpp_server.domain, timeout=TIMEOUT), "disco#items of the server")
        assert all(isinstance(i.jid, JID) for i in items)


async def test_version_and_time_of_the_server(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """XEP-0092 and XEP-0202 where the server's disco lists them; an error reply where it does not."""
    async with served(await login(xmpp_server, pki), our_mux()) as s:
        info = await bounded(disco.get_info(s, xmpp_server.domain, timeout=TIMEOUT), "disco#info")
        if info.has_feature(version.NS):
            v = await bounded(version.get(s, xmpp_server.domain, timeout=TIMEOUT), "version of the server")
            want = "prosody" if isinstance(xmpp_server, servers.ProsodyServer) else "ejabberd"
            assert want in v.name.lower() and v.version
        else:
            with pytest.raises(StanzaError):
                await bounded(version.get(s, xmpp_server.domain, timeout=TIMEOUT), "version of the server")
        if info.has_feature(xtime.NS):
            t = await bounded(xtime.get(s, xmpp_server.domain, timeout=TIMEOUT), "time of the server")
            # The server runs on this machine: its clock is ours (a sanity check, not a timing).
            assert abs(t.utc - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=10)
        else:
            with pytest.raises(StanzaError):
                await bounded(xtime.get(s, xmpp_server.domain, timeout=TIMEOUT), "time of the server")
    # What each server offers, as these tests found it (servers.md): Prosody both.
    if isinstance(xmpp_server, servers.ProsodyServer):
        assert info.has_feature(version.NS) and info.has_feature(xtime.NS)
    else:
        assert info.has_feature(version.NS)


async def test_receipts_between_two_of_our_clients(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """XEP-0184 through the server: alice asks, bob's handler answers, alice's wait ends."""
    seen: list[str] = []
    bob_mux = our_mux("bob")
    alice = await login(xmpp_server, pki, "alice", resource="receipts-a")
    bob = await login(xmpp_server, pki, "bob", resource="receipts-b")
    async with served(alice, our_mux("alice")), served(bob, bob_mux):
        await bob.send_presence(Presence())
        await alice.send_presence(Presence())
        assert bob.local_addr is not None and alice.local_addr is not None
        msg = Message(to=bob.local_addr, type=MessageType.CHAT)
        receipt = await bounded(receipts.send_with_receipt(alice, msg, body("did you get this?"), timeout=TIMEOUT),
                                "the receipt")
        assert receipts.received_id(receipt) == msg.id
        assert receipt.get("from") == str(bob.local_addr)
        seen.append(msg.id)
        # To the bare JID: the server delivers to bob's resource, whose receipt counts.
        msg2 = Message(to=bob.local_addr.bare(), type=MessageType.CHAT)
        receipt2 = await bounded(receipts.send_with_receipt(alice, msg2, body("and this?"), timeout=TIMEOUT),
                                 "the receipt of a message to the bare JID")
        assert receipts.received_id(receipt2) == msg2.id
    assert len(seen) == 1


async def test_caps_through_the_server(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """XEP-0115: our <c/> reaches another resource intact; it fetches node#ver and verifies our ver."""
    one_mux = our_mux("one")
    ours = caps.caps_for(disco.mux_info(one_mux), CAPS_NODE)
    got: asyncio.Queue[tuple[Presence, Element]] = asyncio.Queue()
    two_mux = ServeMux(NS_CLIENT, ping.handle())
    two_mux.presence_func(None, None, lambda p, el, s: got.put_nowait((p, el)))
    one = await login(xmpp_server, pki, "alice", resource="caps-one")
    two = await login(xmpp_server, pki, "alice", resource="caps-two")
    async with served(one, one_mux), served(two, two_mux):
        await two.send_presence(Presence())
        await one.send_presence(Presence(), ours)
        while True:
            p, el = await bounded(got.get(), "our presence with caps at the other resource")
            if p.from_ == one.local_addr:
                break
        seen = caps.Caps.from_presence(el)
        assert seen == ours
        cache = caps.Cache(max_entries=8)
        info = await bounded(cache.fetch(two, one.local_addr, seen, timeout=TIMEOUT), "fetching our caps")
        assert len(cache) == 1 and cache.get(ours) is not None
        assert caps.ver(info) == ours.ver and info.has_feature(receipts.NS)
        # Prosody advertises its own caps in the stream features (ejabberd does
        # without mod_caps, which these servers do not load): the <c/> reads,
        # and the server's answer at node#ver verifies against its ver.
        listed = one.features.get(caps.C)
        if isinstance(xmpp_server, servers.ProsodyServer):
            assert listed is not None
        if listed is not None:
            theirs = caps.Caps.from_element(listed)
            await bounded(cache.fetch(one, xmpp_server.domain, theirs, timeout=TIMEOUT), "the server's caps")
            assert cache.get(theirs) is not None, "the server's ver did not verify"


# ------------------------------------------------------------------ slixmpp


class Slix(slixmpp.ClientXMPP):
    """slixmpp with the plugins of the extensions compared: ping, disco, caps, version."""

    def __init__(self, jid: str, password: str, ca_file: str) -> None:
        """Prepare (not connect) the client; STARTTLS verified against ``ca_file``."""
        super().__init__(jid, password, sasl_mech="SCRAM-SHA-256")
        self.ca_certs = ca_file
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        for p in ("xep_0030", "xep_0115", "xep_0199", "xep_0092"):
            self.register_plugin(p)
        self.presences: asyncio.Queue[Any] = asyncio.Queue()
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", lambda _e: self._started.done() or self._started.set_result(None))
        self.add_event_handler("presence_available", self.presences.put_nowait)


@contextlib.asynccontextmanager
async def slix_online(server: Server, jid: str) -> AsyncIterator[Slix]:
    """A logged-in :class:`Slix` on ``server``; disconnected (bounded) at the end."""
    client = Slix(jid, USERS[JID.parse(jid).local or ""], server.ca_file)
    try:
        client.connect(server.host, server.port)
        await bounded(client._started, "slixmpp's login")
        yield client
    finally:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(client.disconnect(wait=2.0), TIMEOUT)
        client.abort()


@pytest.fixture(autouse=True)
def _quiet_slixmpp() -> None:
    """Keep slixmpp's debug chatter out of failure reports."""
    logging.getLogger("slixmpp").setLevel(logging.WARNING)


@contextlib.asynccontextmanager
async def ours_and_slix(mux: ServeMux) -> AsyncIterator[tuple[Session, Slix]]:
    """Our alice (serving ``mux``) and slixmpp's bob on one embedded server."""
    async with Server(users=USERS) as server:
        session = await dial_client_session(
            "alice@localhost/ours", USERS["alice"], host=server.host, port=server.port,
            tls_context=server.client_context(), timeout=TIMEOUT,
        )
        async with served(session, mux) as s, slix_online(server, "bob@localhost/slix") as slix:
            yield s, slix


async def test_slixmpp_pings_both_ways() -> None:
    """XEP-0199: our Handler answers slixmpp's ping; slixmpp answers ours."""
    pinged: list[Any] = []
    mux = ServeMux(NS_CLIENT, ping.handle(ping.Handler(on_ping=pinged.append)))
    async with ours_and_slix(mux) as (s, slix):
        rtt = await bounded(ping.send(s, "bob@localhost/slix", timeout=TIMEOUT), "our ping of slixmpp")
        assert rtt >= 0.0
        try:
            their = await bounded(slix.plugin["xep_0199"].ping(jid=slixmpp.JID("alice@localhost/ours"),
                                                              timeout=TIMEOUT), "slixmpp's ping")
        except IqError as exc:
            pytest.fail(f"we answered slixmpp's ping with an error: {exc.iq}")
        assert their >= 0 and len(pinged) == 1 and str(pinged[0].from_) == "bob@localhost/slix"


async def test_slixmpp_reads_our_disco_and_verifies_our_caps() -> None:
    """slixmpp reads our disco#info; its XEP-0115 code computes our ver; it verifies our <c/>."""
    mux = our_mux("ours")
    ours = caps.caps_for(disco.mux_info(mux), CAPS_NODE)
    async with ours_and_slix(mux) as (s, slix):
        iq = await bounded(slix.plugin["xep_0030"].get_info(jid=slixmpp.JID("alice@localhost/ours"),
                                                            timeout=TIMEOUT), "slixmpp's disco#info")
        theirs = iq["disco_info"]
        assert set(theirs["features"]) == set(disco.mux_info(mux).features)
        assert ("client", "bot", None, "ours") in theirs["identities"]
        assert slix.plugin["xep_0115"].generate_verstring(theirs, "sha-1") == ours.ver

        # Our presence with caps, directed to slixmpp: it asks node#ver, verifies and records our ver.
        await s.send_presence(Presence(to=JID.parse("bob@localhost/slix")), ours)
        recorded = None
        for _ in range(int(TIMEOUT / 0.05)):
            recorded = await slix.plugin["xep_0115"].get_verstring(slixmpp.JID("alice@localhost/ours"))
            if recorded:
                break
            await asyncio.sleep(0.05)
        assert recorded == ours.ver
        cached = await slix.plugin["xep_0115"].get_caps(verstring=ours.ver)
        assert cached is not None and ping.NS in cached["features"]


async def test_we_verify_slixmpps_caps() -> None:
    """slixmpp's presence carries its <c/>; our cache fetches node#ver and the hash matches ours."""
    got: asyncio.Queue[Element] = asyncio.Queue()
    mux = our_mux("ours")
    mux.presence_func(None, None, lambda p, el, s: got.put_nowait(el))
    async with ours_and_slix(mux) as (s, slix):
        # slixmpp computes and assigns its own ver only when told to.
        await bounded(slix.plugin["xep_0115"].update_caps(broadcast=False), "slixmpp's update_caps")
        slix.send_presence(pto=slixmpp.JID("alice@localhost/ours"))
        c = None
        for _ in range(20):
            el = await bounded(got.get(), "slixmpp's presence")
            c = caps.Caps.from_presence(el)
            if c is not None:
                break
        assert c is not None and c.hash == "sha-1" and c.node.startswith("http://slixmpp.com/ver/")
        cache = caps.Cache()
        info = await bounded(cache.fetch(s, "bob@localhost/slix", c, timeout=TIMEOUT), "slixmpp's caps")
        assert len(cache) == 1, (caps.verification_string(info), c.ver)
        assert info.has_feature(ping.NS) and info.has_feature(version.NS)


async def test_version_both_ways_with_slixmpp() -> None:
    """XEP-0092: slixmpp asks our Handler; we ask slixmpp's plugin."""
    async with ours_and_slix(our_mux("ours-bot")) as (s, slix):
        v = await bounded(version.get(s, "bob@localhost/slix", timeout=TIMEOUT), "slixmpp's version")
        assert v.name == "Slixmpp" and v.version == slixmpp.__version__
        iq = await bounded(slix.plugin["xep_0092"].get_version(slixmpp.JID("alice@localhost/ours"),
                                                               timeout=TIMEOUT), "our version")
        assert iq["software_version"]["name"] == "ours-bot" and iq["software_version"]["version"] == "1.0"


async def test_unknown_disco_node_is_item_not_found_for_slixmpp() -> None:
    """A node we do not have is an item-not-found error, as slixmpp sees it."""
    async with ours_and_slix(our_mux()) as (_s, slix):
        with pytest.raises(IqError) as info:
            await bounded(slix.plugin["xep_0030"].get_info(jid=slixmpp.JID("alice@localhost/ours"), node="nope",
                                                           timeout=TIMEOUT), "disco of an unknown node")
        assert info.value.condition == Condition.ITEM_NOT_FOUND.value
