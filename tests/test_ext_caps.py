"""XEP-0115 entity capabilities: the XEP's own examples, the cache, <c/> and the stream feature."""

from __future__ import annotations

from typing import Any

import pytest

from xmpp import caps, disco, ping
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.negotiator import StreamConfig
from xmpp.stanza import Condition, Presence, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import Element, Name, StartElement

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

# XEP-0115 section 5.2, the simple generation example.
SIMPLE = """
<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>"""

# XEP-0115 section 5.3, the complex generation example (features and fields
# here in another order than the XEP lists them: the algorithm sorts).
COMPLEX = """
<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='os'><value>Mac</value></field>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv6</value><value>ipv4</value></field>
    <field var='software_version'><value>0.11</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
  </x>
</query>"""

COMPLEX_S = (
    "client/pc/el/\u03a8 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<"
    "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
    "http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<"
    "os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
)


def parse(engine: Any, xml: str) -> Any:
    """The element of ``xml`` as ``engine`` parses it."""
    events = engine.StreamParser().feed(HEADER + xml.strip().encode("utf-8"))
    return events[1]


def test_simple_example(engine: Any) -> None:
    info = disco.Info.from_element(parse(engine, SIMPLE))
    assert caps.verification_string(info) == (
        "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<"
        "http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
    )
    assert caps.ver(info) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_complex_example(engine: Any) -> None:
    info = disco.Info.from_element(parse(engine, COMPLEX))
    assert caps.verification_string(info) == COMPLEX_S
    assert caps.ver(info) == "q07IKJEyjvHSyhy//CH0CxmKi8w="
    assert caps.ver(info, "sha-1") == caps.ver(info)
    # Other hashes hash the same string.
    import base64
    import hashlib

    want = base64.b64encode(hashlib.sha256(COMPLEX_S.encode()).digest()).decode()
    assert caps.ver(info, "sha-256") == want
    with pytest.raises(ValueError):
        caps.ver(info, "sha3-256-unknown")


def test_forms_without_form_type_are_left_out(engine: Any) -> None:
    xml = SIMPLE.replace("</query>", "<x xmlns='jabber:x:data' type='result'><field var='a'><value>b</value></field></x></query>")
    assert caps.ver(disco.Info.from_element(parse(engine, xml))) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_caps_element_round_trip_and_presence_parsing(engine: Any) -> None:
    c = caps.Caps("http://code.google.com/p/exodus", "QgayPKawpkPSDYmwT/WM94uAlu0=")
    pres = Element.from_tokens(Presence().wrap(c))
    got = caps.Caps.from_presence(pres)
    assert got == c and got.disco_node == "http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0="
    assert caps.Caps.from_presence(Element.from_tokens(Presence().wrap())) is None
    legacy = parse(engine, "<presence><c xmlns='http://jabber.org/protocol/caps' node='n' ver='1.0' ext='a b'/></presence>")
    lc = caps.Caps.from_presence(legacy)
    assert lc is not None and lc.legacy and lc.ext == "a b"
    broken = parse(engine, "<presence><c xmlns='http://jabber.org/protocol/caps' node='n'/></presence>")
    assert caps.Caps.from_presence(broken) is None


def test_cache_verifies_and_is_bounded(engine: Any) -> None:
    simple = disco.Info.from_element(parse(engine, SIMPLE))
    complex_ = disco.Info.from_element(parse(engine, COMPLEX))
    cache = caps.Cache(max_entries=1)
    good = caps.Caps("http://code.google.com/p/exodus", "QgayPKawpkPSDYmwT/WM94uAlu0=")
    # A wrong ver, a legacy caps, an unknown hash: never cached.
    assert not cache.add(caps.Caps("n", "q07IKJEyjvHSyhy//CH0CxmKi8w="), simple)
    assert not cache.add(caps.Caps("n", "QgayPKawpkPSDYmwT/WM94uAlu0=", hash=""), simple)
    assert not cache.add(caps.Caps("n", "QgayPKawpkPSDYmwT/WM94uAlu0=", hash="md2"), simple)
    assert len(cache) == 0
    assert cache.add(good, simple)
    assert cache.get(good) == simple.with_node(None)
    assert cache.add(caps.Caps("http://psi-im.org", "q07IKJEyjvHSyhy//CH0CxmKi8w="), complex_)
    assert len(cache) == 1 and cache.get(good) is None  # the oldest went
    with pytest.raises(ValueError):
        caps.Cache(max_entries=0)


def test_cache_refuses_what_must_not_be_cached(engine: Any) -> None:
    twice = SIMPLE.replace("</query>", "<feature var='http://jabber.org/protocol/muc'/></query>")
    info = disco.Info.from_element(parse(engine, twice))
    assert not caps.Cache().add(caps.Caps("n", caps.ver(info)), info)
    dup_form = COMPLEX.replace(
        "</query>",
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
        "<value>urn:xmpp:dataforms:softwareinfo</value></field></x></query>",
    )
    info2 = disco.Info.from_element(parse(engine, dup_form))
    with pytest.raises(ValueError):
        caps.check(info2)
    two_values = COMPLEX.replace("<value>urn:xmpp:dataforms:softwareinfo</value>",
                                 "<value>urn:xmpp:dataforms:softwareinfo</value><value>x</value>")
    with pytest.raises(ValueError):
        caps.verification_string(disco.Info.from_element(parse(engine, two_values)))


async def test_fetch_asks_the_caps_node_once_and_caches() -> None:
    node = "https://example.net/bot"
    mux = ServeMux(NS_CLIENT, ping.handle(), disco.handle(identities=[disco.Identity("client", "bot", "B")], caps_node=node))
    ours = caps.caps_for(disco.mux_info(mux), node)
    async with client_server_pair(client_handler=mux) as (client, server):
        cache = caps.Cache()
        peer = JID.parse("test@example.net/client")
        info = await cache.fetch(server, peer, ours, timeout=5)
        assert info.has_feature(ping.NS) and caps.ver(info) == ours.ver
        assert len(cache) == 1
        # The second time it comes from the cache (no query: the peer could not answer a wrong node anyway).
        assert await cache.fetch(server, peer, ours, timeout=5) == info.with_node(None)
        # A ver that is not the current one is not answered.
        with pytest.raises(StanzaError) as err:
            await disco.get_info(server, peer, node + "#bogus", timeout=5)
        assert err.value.condition is Condition.ITEM_NOT_FOUND
        # A lying ver: answered (as the node is unknown) with an error, nothing cached.
        with pytest.raises(StanzaError):
            await cache.fetch(server, peer, caps.Caps(node, "AAAA"), timeout=5)
        assert len(cache) == 1


async def test_stream_feature_is_parsed() -> None:
    advertised = caps.Caps("https://example.net/server", "abc=")

    def list_caps(session: Any) -> tuple[bool, Any]:
        return False, list(advertised.tokens())

    from xmpp.negotiator import StreamFeature

    server_side = StreamFeature(name=caps.C, list=list_caps)
    async with client_server_pair(
        client_config=StreamConfig(features=[caps.stream_feature()]),
        server_config=StreamConfig(features=[server_side]),
    ) as (client, _server):
        assert client.features[caps.C] == advertised
    assert caps.stream_feature().negotiate is None
    assert isinstance(caps.C, type(Name("", "x"))) and StartElement(caps.C).name.space == caps.NS
