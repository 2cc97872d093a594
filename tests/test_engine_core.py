"""The engine contract (docs/engine.md), run on both engines.

Every test here takes the ``engine`` fixture, so it runs once on the compiled
module and once on the pure twin.
"""

from __future__ import annotations

import importlib
import os
import random
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xmpp.stream import Condition, StreamError

NS_STREAMS = "http://etherx.jabber.org/streams"
HEADER = (
    b"<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
    b"version='1.0' xml:lang='en'>"
)
STANZAS = (
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
    b"</starttls></stream:features> \n"
    b"<message to='juliet@example.com' from='romeo@example.net/orchard' type='chat' id='m1'>"
    b"<body>Wherefore art thou, Romeo? &amp; &lt;&gt; \xc3\xa9\xf0\x9f\x98\x80 &#x41;\n"
    b"second line</body><request xmlns='urn:xmpp:receipts'/>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    b"<presence><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
    b"node='http://example.org' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>"
    b"<iq type='result' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'>"
    b"<identity category='client' type='pc' name='Exodus &quot;x&quot;'/>"
    b"<feature var='urn:xmpp:ping'/></query></iq>"
    b"<iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='v7'>"
    b"<item jid='nurse@example.com' name='Nurse' subscription='both'><group>Friends</group>"
    b"</item></query></iq>"
)
STREAM = HEADER + STANZAS + b"</stream:stream>"


def events_of(engine: types.ModuleType, chunks: list[bytes]) -> list[object]:
    p = engine.StreamParser()
    out: list[object] = []
    for c in chunks:
        for ev in p.feed(c):
            out.append(list(ev) if type(ev) is engine.Element else ev)
    return out


def raises_condition(engine: types.ModuleType, data: bytes, cond: Condition, **kw: int) -> StreamError:
    p = engine.StreamParser(**kw)
    with pytest.raises(StreamError) as info:
        p.feed(data)
    assert info.value.condition is cond, info.value
    # the parser keeps refusing, with the same condition
    with pytest.raises(StreamError) as again:
        p.feed(b" ")
    assert again.value.condition is cond
    assert p.error is not None and p.error.condition is cond
    return info.value


# -- tokens -------------------------------------------------------------------


def test_tokens_are_values(engine: types.ModuleType) -> None:
    n = engine.Name("jabber:client", "body")
    assert n == engine.Name("jabber:client", "body")
    assert hash(n) == hash(engine.Name("jabber:client", "body"))
    assert n != engine.Name("", "body")
    assert n != ("jabber:client", "body")
    space, local = n
    assert (space, local) == ("jabber:client", "body")
    assert repr(n) == "Name('jabber:client', 'body')"
    a = engine.Attr(engine.Name("", "to"), "a@b")
    name, value = a
    assert name.local == "to" and value == "a@b"
    s = engine.StartElement(n, [a])
    assert type(s.attrs) is tuple
    assert s.get("to") == "a@b" and s.get("from") is None and s.get("from", "x") == "x"
    assert s.end() == engine.EndElement(n)
    assert engine.CharData("x") == engine.CharData("x")
    assert engine.CharData("x") != engine.EndElement(n)
    assert len({engine.CharData("x"), engine.CharData("x"), s, engine.StartElement(n, (a,))}) == 2
    with pytest.raises(AttributeError):
        n.local = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s.attrs = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        engine.StartElement(n, ["not an attr"])


# -- the parser ---------------------------------------------------------------


def test_header_and_elements(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    evs = p.feed(STREAM)
    header = evs[0]
    assert type(header) is engine.StartElement
    assert header.name == engine.Name(NS_STREAMS, "stream")
    assert header.attrs[:2] == (
        engine.Attr(engine.Name("", "xmlns"), "jabber:client"),
        engine.Attr(engine.Name("xmlns", "stream"), NS_STREAMS),
    )
    assert header.get("to") == "example.com"
    assert header.get("lang", space="http://www.w3.org/XML/1998/namespace") == "en"
    assert p.header == header
    assert [type(e).__name__ for e in evs] == ["StartElement"] + ["Element"] * 5 + ["EndElement"]
    assert evs[1].name == engine.Name(NS_STREAMS, "features")
    msg = evs[2]
    assert msg.name == engine.Name("jabber:client", "message")
    assert msg.get("type") == "chat" and msg.get("nope") is None
    body = msg.find("body")
    assert body is not None and body.name.space == "jabber:client"
    assert body.text == "Wherefore art thou, Romeo? & <> \u00e9\U0001f600 A\nsecond line"
    assert msg.find("request", "urn:xmpp:receipts") is not None
    assert msg.find("request", "jabber:client") is None
    assert [c.name.local for c in msg.children()] == ["body", "request", "active"]
    toks = list(msg)
    assert toks[0] == msg.start and toks[-1] == msg.start.end()
    # one CharData for text split by entities and newlines
    assert sum(1 for t in toks if type(t) is engine.CharData) == 1
    assert list(msg) == toks  # a new iterator each time
    assert evs[-1] == engine.EndElement(engine.Name(NS_STREAMS, "stream"))
    assert p.closed


@pytest.mark.parametrize("ns", ["jabber:client", "jabber:server", "jabber:component:accept"])
def test_default_namespace_from_header(engine: types.ModuleType, ns: str) -> None:
    data = (
        f"<stream:stream xmlns='{ns}' xmlns:stream='{NS_STREAMS}'><message><body>x</body></message>"
    ).encode()
    el = engine.StreamParser().feed(data)[1]
    assert el.name == engine.Name(ns, "message")
    assert el.find("body").name.space == ns
    assert el.encode(ns) == b"<message><body>x</body></message>"
    assert bytes(el) == f'<message xmlns="{ns}"><body>x</body></message>'.encode()


def test_every_split_gives_the_same_events(engine: types.ModuleType) -> None:
    want = events_of(engine, [STREAM])
    for i in range(len(STREAM) + 1):
        assert events_of(engine, [STREAM[:i], STREAM[i:]]) == want, i
    assert events_of(engine, [STREAM[i : i + 1] for i in range(len(STREAM))]) == want
    rnd = random.Random(7)
    for _ in range(50):
        cuts = sorted(rnd.sample(range(1, len(STREAM)), 12))
        parts = [STREAM[a:b] for a, b in zip([0] + cuts, cuts + [len(STREAM)])]
        assert events_of(engine, parts) == want


def test_each_element_returned_by_the_feed_that_completes_it(engine: types.ModuleType) -> None:
    # Feeding byte by byte, an event must appear exactly when the byte that
    # completes it ('>' of its end tag) is fed: nothing is held back.
    p = engine.StreamParser()
    ends = []
    for i in range(len(STREAM)):
        if p.feed(STREAM[i : i + 1]):
            ends.append(i)
    whole = engine.StreamParser()
    completed = []
    for i in range(len(STREAM)):
        prefix_events = len(engine.StreamParser().feed(STREAM[: i + 1]))
        completed.append(prefix_events)
    firsts = [i for i in range(len(STREAM)) if completed[i] > (completed[i - 1] if i else 0)]
    assert ends == firsts
    assert all(STREAM[i : i + 1] == b">" for i in ends)
    assert whole.feed(STREAM)


def test_whitespace_keepalives_and_buffers(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    assert len(p.feed(bytearray(HEADER))) == 1
    assert p.feed(b" ") == []
    assert p.feed(memoryview(b"\n \t")) == []
    evs = p.feed(memoryview(b"<presence/>"))
    assert len(evs) == 1 and evs[0].name.local == "presence"


def test_reset_starts_a_new_stream(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    p.feed(HEADER + b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    p.reset()
    assert p.header is None
    evs = p.feed(HEADER + b"<message/>")
    assert [type(e).__name__ for e in evs] == ["StartElement", "Element"]
    p.reset()
    evs = p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='" + NS_STREAMS.encode() + b"'>")
    assert p.header is not None and len(evs) == 1


def test_error_keeps_earlier_events(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    with pytest.raises(StreamError) as info:
        p.feed(HEADER + b"<message/><presence/><!-- nope -->")
    assert info.value.condition is Condition.RESTRICTED_XML
    assert [type(e).__name__ for e in info.value.events] == ["StartElement", "Element", "Element"]


# -- restricted XML and limits ------------------------------------------------

H = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


@pytest.mark.parametrize(
    "data, cond",
    [
        (H + b"<message><!-- c --></message>", Condition.RESTRICTED_XML),
        (H + b"<!-- c -->", Condition.RESTRICTED_XML),
        (b"<!-- c --><stream/>", Condition.RESTRICTED_XML),
        (H + b"<message><?pi data?></message>", Condition.RESTRICTED_XML),
        (b"<?pi data?><stream/>", Condition.RESTRICTED_XML),
        (b"<!DOCTYPE stream><stream/>", Condition.RESTRICTED_XML),
        (b"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'b'>]><s>&a;</s>", Condition.RESTRICTED_XML),
        (H + b"<!DOCTYPE x>", Condition.RESTRICTED_XML),
        (H + b"<!ENTITY a 'b'>", Condition.RESTRICTED_XML),
        (H + b"<message>&undeclared;</message>", Condition.RESTRICTED_XML),
        (b"<?xml version='1.0'?>" + H + b"<?xml version='1.0'?>", Condition.RESTRICTED_XML),
        (b"<?xml version='1.0' encoding='ISO-8859-1'?><stream/>", Condition.UNSUPPORTED_ENCODING),
        (b"\xfe\xff\x00<", Condition.UNSUPPORTED_ENCODING),
        (H + b"<message></presence>", Condition.NOT_WELL_FORMED),
        (H + b"<message>\x00</message>", Condition.NOT_WELL_FORMED),
        (H + b"<message>\x01</message>", Condition.NOT_WELL_FORMED),
        (H + b"<message>&#0;</message>", Condition.NOT_WELL_FORMED),
        (H + b"<message>\xff\xfe</message>", Condition.NOT_WELL_FORMED),
        (H + b"<message>\xc3(</message>", Condition.NOT_WELL_FORMED),
        (H + b"<message a='1' a='2'/>", Condition.NOT_WELL_FORMED),
        (H + b"<x:message/>", Condition.NOT_WELL_FORMED),
        (H + b"</stream:stream><message/>", Condition.NOT_WELL_FORMED),
        (b"hello", Condition.NOT_WELL_FORMED),
        (H + b"text<message/>", Condition.BAD_FORMAT),
    ],
)
def test_refused_input(engine: types.ModuleType, data: bytes, cond: Condition) -> None:
    raises_condition(engine, data, cond)
    # the same refusal whatever the chunking
    p = engine.StreamParser()
    with pytest.raises(StreamError) as info:
        for i in range(len(data)):
            p.feed(data[i : i + 1])
    assert info.value.condition is cond


def test_size_and_depth_limits(engine: types.ModuleType) -> None:
    ok = H + b"<message><body>" + b"x" * 900 + b"</body></message>"
    assert len(engine.StreamParser(max_stanza_bytes=1000).feed(ok)) == 2
    raises_condition(
        engine, H + b"<message><body>" + b"x" * 1100 + b"</body></message>",
        Condition.POLICY_VIOLATION, max_stanza_bytes=1000,
    )
    # the limit is per element: many small ones are fine
    assert len(engine.StreamParser(max_stanza_bytes=1000).feed(H + ok[len(H):] * 50)) == 51
    deep_ok = H + b"<a>" * 5 + b"</a>" * 5
    assert len(engine.StreamParser(max_depth=5).feed(deep_ok)) == 2
    raises_condition(engine, H + b"<a>" * 6, Condition.POLICY_VIOLATION, max_depth=5)
    raises_condition(engine, H + b"<a>" * 10000, Condition.POLICY_VIOLATION)


def _vmrss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("opening", [b"<message><body>", b"<message to='"], ids=["text", "endless-tag"])
def test_hundred_megabytes_fed_in_chunks(engine: types.ModuleType, opening: bytes) -> None:
    p = engine.StreamParser()
    p.feed(H + opening)
    before = _vmrss_mb()
    chunk = b"x" * 65536
    fed = 0
    with pytest.raises(StreamError) as info:
        while fed < 100 * 1024 * 1024:
            p.feed(chunk)
            fed += len(chunk)
    assert info.value.condition is Condition.POLICY_VIOLATION
    assert fed <= engine.DEFAULT_MAX_STANZA_BYTES + 2 * len(chunk)
    assert _vmrss_mb() - before < 64


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a>&lol9;</a>"
)
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "' + b"A" * 100000 + b'">]>'
    b"<stream><m>" + b"&a;" * 10000 + b"</m>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<stream><m>&x;</m>"
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("data", [BILLION_LAUGHS, QUADRATIC, EXTERNAL], ids=["laughs", "quadratic", "external"])
def test_entity_attacks_expand_nothing(engine: types.ModuleType, data: bytes) -> None:
    before = _vmrss_mb()
    for size in (len(data), 4096, 7):
        p = engine.StreamParser()
        with pytest.raises(StreamError) as info:
            for i in range(0, len(data), size):
                p.feed(data[i : i + size])
        assert info.value.condition is Condition.RESTRICTED_XML
        assert not info.value.events
    assert _vmrss_mb() - before < 32


def test_many_distinct_names_stay_bounded(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    p.feed(H)
    for i in range(20000):
        (el,) = p.feed(b"<a%d x%d='1'/>" % (i, i))
        assert el.name.local == "a%d" % i and el.get("x%d" % i) == "1"


# -- namespace declarations ------------------------------------------------------

NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_XMLNS = "http://www.w3.org/2000/xmlns/"
BARE = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
RESERVED_DECLS = {
    # the namespace name 'xmlns' would read as a Go-form declaration
    "xmlns-uri-used-on-attr": H + b"<x xmlns:a='xmlns' a:b='c'/>",
    "xmlns-uri-attr-local-xmlns": H + b"<x xmlns:a='xmlns' a:xmlns='c'/>",
    "xmlns-uri-unused": H + b"<x xmlns:a='xmlns'/>",
    "xmlns-uri-on-element": H + b"<a:x xmlns:a='xmlns'/>",
    "xmlns-uri-default": H + b"<x xmlns='xmlns'/>",
    "xmlns-uri-nested": H + b"<x><y><z xmlns:b='xmlns' b:c='d'/></y></x>",
    "xmlns-uri-in-header": b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    b"xmlns:a='xmlns' a:b='c'>",
    "xmlns-uri-default-in-header": b"<stream:stream xmlns='xmlns' xmlns:stream='http://etherx.jabber.org/streams'>",
    # Namespaces in XML 1.0, section 3
    "xmlns-namespace-name": H + b"<x xmlns:a='http://www.w3.org/2000/xmlns/' a:b='c'/>",
    "xmlns-namespace-name-default": H + b"<x xmlns='http://www.w3.org/2000/xmlns/'/>",
    "xml-prefix-elsewhere": H + b"<x xmlns:xml='urn:not-xml'/>",
    "xml-namespace-other-prefix": H + b"<x xmlns:a='http://www.w3.org/XML/1998/namespace' a:b='c'/>",
    "xml-namespace-default": H + b"<x xmlns='http://www.w3.org/XML/1998/namespace'/>",
    "xmlns-prefix-declared": H + b"<x xmlns:xmlns='urn:a'/>",
    "xml-prefix-in-header": b"<stream:stream xmlns:xml='urn:x' xmlns:stream='http://etherx.jabber.org/streams'>",
}


@pytest.mark.parametrize("name", sorted(RESERVED_DECLS))
def test_reserved_namespace_declarations_are_refused(engine: types.ModuleType, name: str) -> None:
    data = RESERVED_DECLS[name]
    raises_condition(engine, data, Condition.NOT_WELL_FORMED)
    p = engine.StreamParser()
    with pytest.raises(StreamError) as info:
        for i in range(len(data)):
            p.feed(data[i : i + 1])
    assert info.value.condition is Condition.NOT_WELL_FORMED


def test_reserved_declaration_keeps_earlier_elements(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    with pytest.raises(StreamError) as info:
        p.feed(H + b"<iq type='get' id='1'/><x xmlns:a='xmlns' a:b='c'/><iq type='get' id='2'/>")
    assert info.value.condition is Condition.NOT_WELL_FORMED
    assert "xmlns" in info.value.text
    assert [type(e) for e in info.value.events] == [engine.StartElement, engine.Element]
    assert info.value.events[1].get("id") == "1"


def test_ns_decl_error_rules() -> None:
    """The rule both engines apply, whatever libexpat refuses before it."""
    from xmpp._prolog import NS_SUSPECT_PREFIXES, NS_SUSPECT_URIS, ns_decl_error

    refused = [("a", "xmlns"), ("", "xmlns"), ("xmlns", "urn:a"), ("a", NS_XMLNS), ("", NS_XMLNS),
               ("xml", "urn:a"), ("xml", ""), ("a", NS_XML), ("", NS_XML), ("xmlns", NS_XMLNS)]
    for prefix, uri in refused:
        msg = ns_decl_error(prefix, uri)
        assert msg, (prefix, uri)
        # the engines ask only about declarations that pass the cheap filter
        assert prefix in NS_SUSPECT_PREFIXES or uri in NS_SUSPECT_URIS
    for prefix, uri in [("a", "urn:a"), ("", "jabber:client"), ("", ""), ("xml", NS_XML), ("a", "XMLNS"),
                        ("a", "xml"), ("a", "urn:xmlns"), ("xmlns2", "urn:a"), ("xml2", NS_XML + "/")]:
        assert ns_decl_error(prefix, uri) is None, (prefix, uri)
    assert "xmlns:a" in (ns_decl_error("a", "xmlns") or "")


def _go_form_decls(el: object) -> list[object]:
    """The attributes of any start tag in ``el`` that look like namespace declarations."""
    found = []
    for tok in el:  # type: ignore[attr-defined]
        for a in getattr(tok, "attrs", ()):
            if a.name.space == "xmlns" or (a.name.space == "" and a.name.local == "xmlns"):
                found.append(a)
    return found


@pytest.mark.parametrize(
    "stanza",
    [
        b"<x xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>",
        b"<x xmlns:a='XMLNS' a:b='c'/>",
        b"<x xmlns:a='xml' a:b='c'/>",
        b"<x xmlns:a='urn:xmlns' a:xmlns='c' xml:xmlns='d'/>",
        b"<x xmlns:xmlnsx='urn:a' xmlnsx:b='c'/>",
        b"<x xmlns:a='jabber:client' a:b='c'><a:y a:z='1'/></x>",
        b"<xmlns xmlns=''/>",
        b"<x><xml:y xml:lang='de'>t</xml:y></x>",
        b"<xml:x/>",
    ],
)
def test_declarations_near_the_reserved_ones_are_kept(engine: types.ModuleType, stanza: bytes) -> None:
    """What is allowed parses; no attribute of an element looks like a declaration;
    every element re-encodes and parses back equal."""
    evs = engine.StreamParser().feed(H + stanza)
    assert len(evs) == 2 and type(evs[1]) is engine.Element
    el = evs[1]
    assert _go_form_decls(el) == []
    for data, header in ((bytes(el), BARE), (el.encode("jabber:client"), H)):
        again = engine.StreamParser().feed(header + data)
        assert again[1] == el, data


def test_header_declarations_in_go_form(engine: types.ModuleType) -> None:
    N, A = engine.Name, engine.Attr
    header = engine.StreamParser().feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
        b"xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en' a='1'>"
    )[0]
    assert header.attrs == (
        A(N("", "xmlns"), "jabber:client"),
        A(N("xmlns", "stream"), NS_STREAMS),
        A(N("xmlns", "xml"), NS_XML),
        A(N(NS_XML, "lang"), "en"),
        A(N("", "a"), "1"),
    )


def test_encoder_writes_the_xml_namespace_with_its_prefix(engine: types.ModuleType) -> None:
    """The xml prefix is bound everywhere and may not be a default namespace."""
    N = engine.Name
    x, y = N(NS_XML, "x"), N("jabber:client", "y")
    toks = [engine.StartElement(y), engine.StartElement(x, [engine.Attr(N(NS_XML, "lang"), "en")]),
            engine.CharData("t"), engine.EndElement(x), engine.EndElement(y)]
    el = engine.Element.from_tokens(toks)
    assert bytes(el) == b'<y xmlns="jabber:client"><xml:x xml:lang="en">t</xml:x></y>'
    assert el.encode("jabber:client") == b'<y><xml:x xml:lang="en">t</xml:x></y>'
    # with a namespaced attribute, the general path of the encoder
    z = engine.Element.from_tokens([engine.StartElement(x, [engine.Attr(N("urn:a", "b"), "c")]),
                                    engine.EndElement(x)])
    assert bytes(z) == b'<xml:x ns1:b="c" xmlns:ns1="urn:a"/>'
    for e in (el, z):
        assert engine.StreamParser().feed(BARE + bytes(e))[1] == e


# -- the first fault in stream order ---------------------------------------------


@pytest.mark.parametrize(
    "data, cond, kw",
    [
        # text between stanzas comes before the malformed tag after it
        (H + b"t</p:y>", Condition.BAD_FORMAT, {}),
        (H + b"&amp;<![CDATA[x]]></ x", Condition.BAD_FORMAT, {}),
        (H + b"<m/>junk<!-- c -->", Condition.BAD_FORMAT, {}),
        (H + b"x\xff", Condition.BAD_FORMAT, {}),
        # a stanza over the size bound comes before the fault that follows in its text
        (H + b"<m>" + b"x" * 600 + b"</n>", Condition.POLICY_VIOLATION, {"max_stanza_bytes": 512}),
        (H + b"<m>" + b"x" * 600 + b"\xff", Condition.POLICY_VIOLATION, {"max_stanza_bytes": 512}),
        (H + b"<m>" + b"x" * 600 + b"&bogus;", Condition.POLICY_VIOLATION, {"max_stanza_bytes": 512}),
    ],
    ids=["text-then-bad-tag", "ref-and-cdata-then-bad-tag", "text-then-comment", "text-then-bad-utf8",
         "big-then-bad-tag", "big-then-bad-utf8", "big-then-entity"],
)
def test_the_first_fault_decides_the_condition(
    engine: types.ModuleType, data: bytes, cond: Condition, kw: dict[str, int]
) -> None:
    """Both engines report the fault that comes first in the stream, even when a
    later one is in the same chunk (the pure twin once lost text buffered by pyexpat)."""
    raises_condition(engine, data, cond, **kw)


# -- Element ------------------------------------------------------------------


def test_element_from_tokens(engine: types.ModuleType) -> None:
    n = engine.Name("jabber:client", "message")
    b = engine.Name("jabber:client", "body")
    toks = [
        engine.StartElement(n, [engine.Attr(engine.Name("", "to"), "a@b")]),
        engine.StartElement(b),
        engine.CharData("hel"),
        engine.CharData("lo"),
        engine.EndElement(b),
        engine.EndElement(n),
    ]
    el = engine.Element.from_tokens(toks)
    assert el.get("to") == "a@b" and el.find("body").text == "hello"
    assert list(el)[2] == engine.CharData("hello")
    assert bytes(el) == b'<message xmlns="jabber:client" to="a@b"><body>hello</body></message>'
    parsed = engine.StreamParser().feed(H + el.encode("jabber:client"))[1]
    assert parsed == el
    for bad in ([], toks[:-1], toks + [engine.CharData("x")], toks[1:], [engine.CharData("x")] + toks,
                [toks[0], engine.EndElement(b)]):
        with pytest.raises(ValueError):
            engine.Element.from_tokens(bad)
    with pytest.raises(TypeError):
        engine.Element()


# -- the encoder ----------------------------------------------------------------


def test_encoder_escaping_and_namespaces(engine: types.ModuleType) -> None:
    N = engine.Name
    out: list[bytes] = []
    enc = engine.Encoder(out.append, ns="jabber:client")
    header = engine.StartElement(
        N(NS_STREAMS, "stream"),
        [
            engine.Attr(N("", "xmlns"), "jabber:client"),
            engine.Attr(N("xmlns", "stream"), NS_STREAMS),
            engine.Attr(N("", "to"), "example.com"),
            engine.Attr(N("http://www.w3.org/XML/1998/namespace", "lang"), "en"),
        ],
    )
    enc.write_token(header)
    assert enc.flush() == (
        b'<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" '
        b'to="example.com" xml:lang="en">'
    )
    msg = N("jabber:client", "message")
    enc.write_token(engine.StartElement(msg, [engine.Attr(N("", "id"), "a\"<&>\t\n\r'")]))
    enc.write_token(engine.CharData("x < y & z > w\r\n\t'\""))
    enc.write_token(engine.StartElement(N("urn:xmpp:receipts", "request")))
    enc.write_token(engine.EndElement(N("urn:xmpp:receipts", "request")))
    enc.write_token(engine.StartElement(N("", "plain")))
    enc.write_token(engine.EndElement(N("", "plain")))
    enc.write_token(engine.EndElement(msg))
    enc.write_token(engine.StartElement(N(NS_STREAMS, "features")))
    enc.write_token(engine.EndElement(N(NS_STREAMS, "features")))
    data = enc.flush()
    assert data == (
        b'<message id="a&quot;&lt;&amp;&gt;&#9;&#10;&#13;\'">x &lt; y &amp; z &gt; w&#13;\n\t\'"'
        b'<request xmlns="urn:xmpp:receipts"/><plain xmlns=""/></message><stream:features/>'
    )
    assert out == [out[0], data]
    enc.write_token(header.end())
    assert enc.flush() == b"</stream:stream>"
    # what was written parses back to the same tokens
    evs = engine.StreamParser().feed(out[0] + data)
    assert list(evs[1])[1] == engine.CharData("x < y & z > w\r\n\t'\"")
    assert evs[1].get("id") == "a\"<&>\t\n\r'"
    assert evs[2].name == N(NS_STREAMS, "features")


def test_encoder_generated_prefixes_and_errors(engine: types.ModuleType) -> None:
    N = engine.Name
    enc = engine.Encoder()
    a = N("urn:a", "a")
    enc.write_token(engine.StartElement(a, [engine.Attr(N("urn:b", "x"), "1")]))
    enc.write_token(engine.EndElement(a))
    data = enc.flush()
    assert data == b'<a xmlns="urn:a" ns1:x="1" xmlns:ns1="urn:b"/>'
    el = engine.StreamParser().feed(H + data)[1]
    assert el.get("x", space="urn:b") == "1"
    for bad in ["\x00", "\x08", "\ufffe", "\uffff", "\ud800"]:
        with pytest.raises(ValueError):
            engine.Encoder().write_token(engine.CharData("a" + bad))
        enc = engine.Encoder()
        with pytest.raises(ValueError):
            enc.write_token(engine.StartElement(a, [engine.Attr(N("", "v"), bad)]))
    with pytest.raises(ValueError):
        engine.Encoder().write_token(engine.EndElement(a))
    enc = engine.Encoder()
    enc.write_token(engine.StartElement(a))
    with pytest.raises(ValueError):
        enc.write_token(engine.EndElement(N("urn:a", "b")))
    with pytest.raises(ValueError):
        engine.Encoder().write_token(engine.StartElement(N("urn:a", "")))
    with pytest.raises(TypeError):
        engine.Encoder().write_token("<a/>")


def test_encoder_encodes_elements_and_readers(engine: types.ModuleType) -> None:
    evs = engine.StreamParser().feed(STREAM)
    for el in evs[1:-1]:
        enc = engine.Encoder(ns="jabber:client")
        enc.encode(el)
        via_element = enc.flush()
        enc.encode(list(el))
        assert enc.flush() == via_element == el.encode("jabber:client")
        assert engine.StreamParser().feed(H + via_element)[1] == el


# -- round trip (hypothesis) ----------------------------------------------------

_NAMES = st.sampled_from(["a", "b", "message", "body", "x-y", "z.9", "\u00e9l\u00e9ment", "_u"])
_SPACES = st.sampled_from(["", "jabber:client", "urn:a", "urn:b", "http://x.example/&'\"<"])
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff")
    .filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20),
    max_size=20,
)


@st.composite
def _trees(draw: st.DrawFn, depth: int = 0) -> tuple[object, ...]:
    space = draw(_SPACES)
    local = draw(_NAMES)
    attr_names = draw(
        st.lists(st.tuples(st.sampled_from(["", "", "urn:b", "http://www.w3.org/XML/1998/namespace"]), _NAMES),
                 max_size=3, unique=True)
    )
    attrs = [(s, l, draw(_TEXT)) for s, l in attr_names]
    children: list[object] = []
    if depth < 3:
        for _ in range(draw(st.integers(0, 3))):
            if draw(st.booleans()):
                children.append(draw(_TEXT))
            else:
                children.append(draw(_trees(depth + 1)))
    return (space, local, attrs, children)


def _tokens(engine: types.ModuleType, tree: tuple[object, ...]) -> list[object]:
    space, local, attrs, children = tree
    name = engine.Name(space, local)
    out: list[object] = [
        engine.StartElement(name, [engine.Attr(engine.Name(s, l), v) for s, l, v in attrs])  # type: ignore[attr-defined]
    ]
    for c in children:  # type: ignore[attr-defined]
        if isinstance(c, str):
            if c:
                if out and type(out[-1]) is engine.CharData:
                    out[-1] = engine.CharData(out[-1].text + c)
                else:
                    out.append(engine.CharData(c))
        else:
            out.extend(_tokens(engine, c))
    out.append(engine.EndElement(name))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_trees(), seed=st.integers(0, 2**32 - 1), ns=st.sampled_from(["jabber:client", ""]))
def test_round_trip(engine: types.ModuleType, tree: tuple[object, ...], seed: int, ns: str) -> None:
    toks = _tokens(engine, tree)
    enc = engine.Encoder(ns=ns)
    enc.encode(toks)
    body = enc.flush()
    head = f"<stream:stream xmlns='{ns}' xmlns:stream='{NS_STREAMS}'>".encode() if ns else (
        f"<stream:stream xmlns:stream='{NS_STREAMS}'>".encode()
    )
    data = head + body
    rnd = random.Random(seed)
    p = engine.StreamParser()
    evs: list[object] = []
    i = 0
    while i < len(data):
        step = rnd.randint(1, 40)
        evs.extend(p.feed(data[i : i + step]))
        i += step
    assert len(evs) == 2
    assert list(evs[1]) == toks  # type: ignore[call-overload]
    assert engine.Element.from_tokens(toks) == evs[1]


# -- the switch -----------------------------------------------------------------


def test_compiled_engine_loaded_when_required() -> None:
    from xmpp import xmlstream

    if not os.environ.get("XMPP_REQUIRE_COMPILED"):
        pytest.skip("XMPP_REQUIRE_COMPILED is not set")
    assert xmlstream.COMPILED, "the compiled engine did not load"
    mod = importlib.import_module("xmpp._tokens")
    assert xmlstream.StreamParser is mod.StreamParser


def test_both_engines_export_the_same_names() -> None:
    pure = importlib.import_module("xmpp._tokens_py")
    names = {"DEFAULT_MAX_DEPTH", "DEFAULT_MAX_STANZA_BYTES", "Attr", "CharData", "Element",
             "Encoder", "EndElement", "Name", "StartElement", "StreamParser"}
    assert names <= set(dir(pure))
    try:
        compiled = importlib.import_module("xmpp._tokens")
    except ImportError:
        pytest.skip("compiled engine not built")
    assert names <= set(dir(compiled))
    assert compiled.DEFAULT_MAX_STANZA_BYTES == pure.DEFAULT_MAX_STANZA_BYTES == 10 * 1024 * 1024


def test_stanza_attrs_reads_what_get_reads(engine: types.ModuleType) -> None:
    xml_ns = "http://www.w3.org/XML/1998/namespace"
    p = engine.StreamParser()
    p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
    events = p.feed(
        b"<message to='a@b/c' from='d@e' id='x1' type='chat' xml:lang='de' xmlns:o='urn:o' o:to='not me'/>"
        b"<presence/>"
        b"<iq type='get' id=''><q xmlns='urn:q' to='child'/></iq>"
        # A later duplicate of a name in another namespace must not override.
        b"<message xmlns:z='urn:z' z:id='z' id='real' z:lang='zz'/>"
    )
    got = [e.stanza_attrs() for e in events]
    assert got == [
        ("a@b/c", "d@e", "x1", "chat", "de"),
        (None, None, None, None, None),
        (None, None, "", "get", None),
        (None, None, "real", None, None),
    ]
    for e, attrs in zip(events, got):
        assert attrs == (e.get("to"), e.get("from"), e.get("id"), e.get("type"), e.get("lang", None, xml_ns))
        # A start element reads the same, built by hand or taken from the element.
        assert e.start.stanza_attrs() == attrs
        assert engine.StartElement(e.name, e.attrs).stanza_attrs() == attrs
    # Values are strings equal to fresh ones, even when served from a cache.
    again = engine.StreamParser()
    again.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
    assert again.feed(b"<message to='a@b/c' type='chat'/>")[0].stanza_attrs()[:4] == ("a@b/c", None, None, "chat")
