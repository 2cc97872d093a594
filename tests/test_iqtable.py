"""The IQ correlation table (``IQTable``), run on both engines.

A reply is matched by id **and** stanza name **and** sender, never by id
alone (CVE-2024-46957 in mellium.im/xmpp was a message with a pending IQ id
being taken for the reply).
"""

from __future__ import annotations

import types
from typing import Any

import pytest

HEADER = (
    b"<stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)
SERVER = "example.com"
ACCEPT = frozenset({"", SERVER, "juliet@example.com"})


def parse(engine: types.ModuleType, xml: str, header: bytes = HEADER) -> Any:
    """Parse one top-level element inside a stream and return it."""
    p = engine.StreamParser()
    events = p.feed(header + xml.encode("utf-8"))
    assert len(events) == 2, events
    assert type(events[1]) is engine.Element
    return events[1]


def as_start(engine: types.ModuleType, el: Any) -> Any:
    """The same element as a plain StartElement (the other accepted form)."""
    start = el.start
    assert type(start) is engine.StartElement
    return start


@pytest.fixture(params=["element", "start"])
def form(request: pytest.FixtureRequest) -> str:
    """Each matching test runs with an Element and with its StartElement."""
    return str(request.param)


def reply(engine: types.ModuleType, form: str, xml: str, header: bytes = HEADER) -> Any:
    el = parse(engine, xml, header)
    return el if form == "element" else as_start(engine, el)


def test_result_and_error_match_and_remove(engine: types.ModuleType, form: str) -> None:
    t = engine.IQTable()
    w1, w2 = object(), object()
    t.add("a1", ACCEPT, w1)
    t.add("a2", ACCEPT, w2)
    assert len(t) == 2 and "a1" in t and "a2" in t
    got = t.match(reply(engine, form, "<iq type='result' id='a1' from='example.com'/>"))
    assert got is w1
    assert "a1" not in t and len(t) == 1
    err = (
        "<iq type='error' id='a2'><error type='cancel'>"
        "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    assert t.match(reply(engine, form, err)) is w2
    assert len(t) == 0
    # matched once: the same reply again finds nothing
    assert t.match(reply(engine, form, "<iq type='result' id='a1' from='example.com'/>")) is None


def test_absent_from_is_empty_string(engine: types.ModuleType, form: str) -> None:
    t = engine.IQTable()
    t.add("x", frozenset({SERVER}), "w")
    # no from attribute means "", which this entry does not accept
    assert t.match(reply(engine, form, "<iq type='result' id='x'/>")) is None
    assert "x" in t
    t.add("y", frozenset({""}), "wy")
    assert t.match(reply(engine, form, "<iq type='result' id='y'/>")) == "wy"


@pytest.mark.parametrize(
    "xml",
    [
        "<message id='p1' from='example.com' type='result'><body>hi</body></message>",
        "<message id='p1' from='example.com'/>",
        "<presence id='p1' from='example.com' type='error'/>",
        "<presence id='p1' from='example.com'/>",
    ],
)
def test_message_or_presence_with_pending_id_never_matches(
    engine: types.ModuleType, form: str, xml: str
) -> None:
    t = engine.IQTable()
    t.add("p1", ACCEPT, "waiter")
    assert t.match(reply(engine, form, xml)) is None
    assert "p1" in t and len(t) == 1
    # the real reply still matches afterwards
    assert t.match(reply(engine, form, "<iq type='result' id='p1' from='example.com'/>")) == "waiter"


def test_wrong_from_does_not_match(engine: types.ModuleType, form: str) -> None:
    t = engine.IQTable()
    t.add("f1", ACCEPT, "waiter")
    for frm in ("mallory@evil.example", "juliet@example.com/balcony", "EXAMPLE.COM", "example.com "):
        xml = f"<iq type='result' id='f1' from='{frm}'/>"
        assert t.match(reply(engine, form, xml)) is None, frm
    assert "f1" in t
    assert t.match(reply(engine, form, "<iq type='result' id='f1' from='juliet@example.com'/>")) == "waiter"


@pytest.mark.parametrize("typ", ["get", "set", "", "RESULT", "results"])
def test_request_types_with_pending_id_do_not_match(engine: types.ModuleType, form: str, typ: str) -> None:
    t = engine.IQTable()
    t.add("g1", ACCEPT, "waiter")
    xml = f"<iq type='{typ}' id='g1' from='example.com'><query xmlns='jabber:iq:version'/></iq>"
    assert t.match(reply(engine, form, xml)) is None
    assert t.match(reply(engine, form, "<iq id='g1' from='example.com'/>")) is None  # no type
    assert "g1" in t


def test_namespace_must_be_a_stanza_namespace(engine: types.ModuleType, form: str) -> None:
    t = engine.IQTable()
    t.add("n1", ACCEPT, "w1")
    t.add("n2", ACCEPT, "w2")
    t.add("n3", ACCEPT, "w3")
    foreign = "<iq xmlns='urn:example:other' type='result' id='n1' from='example.com'/>"
    assert t.match(reply(engine, form, foreign)) is None
    assert t.match(reply(engine, form, "<iq xmlns='jabber:server' type='result' id='n1' from='example.com'/>")) == "w1"
    comp = (
        b"<stream:stream xmlns='jabber:component:accept' "
        b"xmlns:stream='http://etherx.jabber.org/streams' from='c.example.com'>"
    )
    assert t.match(reply(engine, form, "<iq type='error' id='n2' from='example.com'/>", comp)) == "w2"
    # a namespaced attribute called id/type/from is not the stanza's attribute
    sneaky = (
        "<iq xmlns:x='urn:x' x:type='result' x:id='n3' type='get' id='n3' from='example.com'/>"
    )
    assert t.match(reply(engine, form, sneaky)) is None
    assert "n3" in t


def test_unknown_id_and_missing_id(engine: types.ModuleType, form: str) -> None:
    t = engine.IQTable()
    assert t.match(reply(engine, form, "<iq type='result' id='zz'/>")) is None  # empty table
    t.add("k", ACCEPT, "w")
    assert t.match(reply(engine, form, "<iq type='result' id='zz'/>")) is None
    assert t.match(reply(engine, form, "<iq type='result'/>")) is None
    assert t.match(reply(engine, form, "<iq type='result' id=''/>")) is None
    assert len(t) == 1


def test_non_ascii_ids_and_addresses(engine: types.ModuleType, form: str) -> None:
    t = engine.IQTable()
    t.add("id-é😀", frozenset({"jüliet@exämple.com"}), "w")
    assert t.match(reply(engine, form, "<iq type='result' id='id-é😀' from='jüliet@exämple.com'/>")) == "w"


def test_other_tokens(engine: types.ModuleType) -> None:
    t = engine.IQTable()
    t.add("e", ACCEPT, "w")
    name = engine.Name("jabber:client", "iq")
    assert t.match(engine.EndElement(name)) is None
    assert t.match(engine.CharData("e")) is None
    with pytest.raises(TypeError):
        t.match("<iq type='result' id='e'/>")
    with pytest.raises(TypeError):
        t.match(None)
    assert "e" in t


def test_from_tokens_element(engine: types.ModuleType) -> None:
    """Elements built by hand match like parsed ones."""
    N, A = engine.Name, engine.Attr
    iq = N("jabber:client", "iq")
    el = engine.Element.from_tokens(
        [
            engine.StartElement(iq, [A(N("", "from"), SERVER), A(N("", "id"), "h"), A(N("", "type"), "result")]),
            engine.EndElement(iq),
        ]
    )
    t = engine.IQTable()
    t.add("h", ACCEPT, "w")
    assert t.match(el) == "w"


def test_duplicate_and_invalid_add(engine: types.ModuleType) -> None:
    t = engine.IQTable()
    t.add("d", ACCEPT, "first")
    with pytest.raises(ValueError):
        t.add("d", ACCEPT, "second")
    with pytest.raises(ValueError):
        t.add("", ACCEPT, "w")
    with pytest.raises(TypeError):
        t.add(b"bytes", ACCEPT, "w")
    with pytest.raises(TypeError):
        t.add("s", "example.com", "w")  # a string, not a set of strings
    assert len(t) == 1
    assert t.pop("d") == "first"
    t.add("d", ACCEPT, "again")  # free once removed
    assert t.pop("d") == "again"


def test_accept_from_other_iterables(engine: types.ModuleType, form: str) -> None:
    t = engine.IQTable()
    t.add("s", {"example.com"}, "w")  # a plain set is copied, later changes do not leak in
    assert t.match(reply(engine, form, "<iq type='result' id='s' from='example.com'/>")) == "w"


def test_pop_and_drain(engine: types.ModuleType) -> None:
    t = engine.IQTable()
    waiters = [object() for _ in range(5)]
    for i, w in enumerate(waiters):
        t.add(f"q{i}", ACCEPT, w)
    assert t.pop("q2") is waiters[2]
    assert t.pop("q2") is None
    assert t.pop("nope") is None
    assert "q2" not in t
    assert 42 not in t and None not in t and ["q1"] not in t
    assert t.drain() == [waiters[0], waiters[1], waiters[3], waiters[4]]
    assert len(t) == 0 and t.drain() == []
    assert "q0" not in t


def test_waiter_may_be_none_like(engine: types.ModuleType, form: str) -> None:
    """Falsy waiters are stored and returned as they are."""
    t = engine.IQTable()
    t.add("z", ACCEPT, 0)
    assert t.match(reply(engine, form, "<iq type='result' id='z'/>")) == 0
    assert "z" not in t


def test_many_entries(engine: types.ModuleType) -> None:
    t = engine.IQTable()
    n = 5000
    for i in range(n):
        t.add(f"id{i}", frozenset({"", f"peer{i % 7}@example.com"}), i)
    assert len(t) == n
    body = "".join(
        f"<iq type='{'result' if i % 2 else 'error'}' id='id{i}' from='peer{i % 7}@example.com'/>"
        f"<message id='id{i + 1}' from='peer{(i + 1) % 7}@example.com' type='chat'/>"
        for i in range(0, n, 3)
    )
    p = engine.StreamParser()
    got = [t.match(ev) for ev in p.feed(HEADER + body.encode()) if type(ev) is engine.Element]
    matched = [g for g in got if g is not None]
    assert matched == list(range(0, n, 3))
    assert len(t) == n - len(matched)
    assert all(f"id{i}" in t for i in range(1, n, 3))
    rest = t.drain()
    assert sorted(rest) == [i for i in range(n) if i % 3]


def test_same_behaviour_on_both_engines() -> None:
    """A scripted sequence gives the same outcomes on the compiled and the pure table."""
    import importlib

    outcomes = []
    for mod in ("xmpp._tokens_py", "xmpp._tokens"):
        try:
            engine = importlib.import_module(mod)
        except ImportError:
            pytest.skip("compiled engine not built")
        t = engine.IQTable()
        t.add("a", ACCEPT, "A")
        t.add("b", frozenset({"x@y"}), "B")
        script = [
            "<iq type='result' id='b'/>",
            "<message id='a'/>",
            "<iq type='set' id='a'/>",
            "<iq type='result' id='b' from='x@y'/>",
            "<iq type='error' id='a' from='juliet@example.com'/>",
        ]
        outcomes.append([t.match(parse(engine, x)) for x in script] + [len(t)])
    assert outcomes[0] == outcomes[1] == [None, None, None, "B", "A", 0]
