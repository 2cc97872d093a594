"""The fuzz target's invariant, checked in every test run (atheris not needed).

``fuzz/fuzz_stream.py::test_one_input`` feeds its input to a StreamParser in
chunks, maybe resetting it, and fails on anything but events or a
``StreamError``.  Here it runs on both engines with hypothesis-made bytes and
with hand-made hostile inputs.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xmpp.stream import Condition, StreamError

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def _load_target() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_stream", ROOT / "fuzz" / "fuzz_stream.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_stream", mod)
    spec.loader.exec_module(mod)
    return mod


fz = _load_target()

BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + b"".join(
        b"<!ENTITY lol%d '%s'>" % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
    )
    + b"]>" + HEADER + b"<message><body>&lol9;</body></message>"
)

NASTY = {
    "billion-laughs": [BILLION_LAUGHS],
    "laughs-after-header": [HEADER + b"<!DOCTYPE x [<!ENTITY a 'b'>]><message>&a;</message>"],
    "doctype-external": [b"<!DOCTYPE stream SYSTEM 'file:///etc/passwd'>" + HEADER],
    "doctype-split": [b"<!DOC", b"TYPE x>", HEADER],
    "truncated-stanza": [HEADER + b"<message to='a@b'><body>unfinished"],
    "truncated-tag": [HEADER + b"<message to='a@b", b"'"],
    "invalid-utf8": [HEADER + b"<message><body>\xc3\x28\xa0\xa1\xff</body></message>"],
    "overlong-utf8": [HEADER + b"<message><body>\xc0\xaf</body></message>"],
    "nul-in-text": [HEADER + b"<message>\x00</message>"],
    "nul-in-name": [HEADER + b"<mess\x00age/>"],
    "nul-only": [b"\x00" * 64],
    "char-ref-nul": [HEADER + b"<message>&#0;</message>"],
    "undeclared-entity": [HEADER + b"<message>&nbsp;</message>"],
    "pi-and-comment": [HEADER + b"<?evil?><!-- x --><message/>"],
    "second-xml-decl": [HEADER + b"<?xml version='1.0'?>"],
    "utf16-bom": [b"\xff\xfe<\x00?\x00x\x00m\x00l\x00"],
    "latin1-decl": [b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER],
    "unbound-prefix": [HEADER + b"<p:message/>"],
    "mismatched-end": [HEADER + b"<message></presence>"],
    "text-between-stanzas": [HEADER + b"hello<message/>"],
    "after-close": [HEADER + b"</stream:stream><message/>"],
    "deep": [HEADER + b"<a>" * 5000],
    "huge-attr": [HEADER + b"<message a='" + b"x" * 70000 + b"'/>"],
    "empty": [b""],
    "garbage": [bytes(range(256))],
}


@pytest.mark.parametrize("name", sorted(NASTY))
def test_nasty_inputs_keep_the_invariant(engine: types.ModuleType, name: str) -> None:
    chunks = NASTY[name]
    # whole, as given, and again after a reset
    fz.test_one_input(fz.make_input([b"".join(chunks)]), engine)
    fz.test_one_input(fz.make_input(chunks[:4]), engine)
    fz.test_one_input(fz.make_input([HEADER + b"<iq type='get' id='1'/>", b"".join(chunks)], reset_before=1), engine)
    fz.test_one_input(fz.make_input([b"".join(chunks)], small_limits=True), engine)


@pytest.mark.parametrize(
    ("name", "cond"),
    [
        ("billion-laughs", Condition.RESTRICTED_XML),
        ("doctype-external", Condition.RESTRICTED_XML),
        ("invalid-utf8", Condition.NOT_WELL_FORMED),
        ("nul-in-text", Condition.NOT_WELL_FORMED),
    ],
)
def test_nasty_inputs_are_refused_with_a_stream_error(engine: types.ModuleType, name: str, cond: Condition) -> None:
    """The hostile inputs above really reach the parser's error paths."""
    parser = engine.StreamParser()
    with pytest.raises(StreamError) as info:
        for c in NASTY[name]:
            parser.feed(c)
    assert info.value.condition is cond


@pytest.mark.parametrize("name", sorted(fz.seeds()))
def test_seeds_keep_the_invariant(engine: types.ModuleType, name: str) -> None:
    fz.test_one_input(fz.seeds()[name], engine)


def test_seeds_reach_elements_and_errors(engine: types.ModuleType) -> None:
    """The seed corpus covers both good streams and refused ones."""
    kinds = set()
    for data in fz.seeds().values():
        chunks, reset_before, small = fz.decode_input(data)
        p = engine.StreamParser(max_stanza_bytes=512, max_depth=8) if small else engine.StreamParser()
        try:
            for i, c in enumerate(chunks):
                if i == reset_before:
                    p.reset()
                for ev in p.feed(c):
                    kinds.add(type(ev).__name__)
        except StreamError as err:
            kinds.add(err.condition.value)
    assert {"StartElement", "Element", "EndElement", "restricted-xml", "not-well-formed",
            "policy-violation"} <= kinds, kinds


def test_input_layout_round_trips() -> None:
    chunks = [b"<a", b"", b"b/>", b"tail"]
    data = fz.make_input(chunks, reset_before=2, small_limits=True)
    assert fz.decode_input(data) == (chunks, 2, True)
    assert fz.decode_input(fz.make_input([b"x"])) == ([b"x"], None, False)
    assert fz.decode_input(b"") == ([b""], None, False)
    # any bytes decode: short heads, offsets past the end
    for data in (b"\x03", b"\x03\xff", b"\xff\xff\xff\xff\xff\xff\xffabc"):
        got, _, _ = fz.decode_input(data)
        assert 1 <= len(got) <= 4


def test_the_target_reports_a_broken_invariant(engine: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser that raises anything but StreamError makes the target fail."""

    class Broken:
        def __init__(self, **kw: int) -> None:
            pass

        def feed(self, data: bytes) -> list[object]:
            raise KeyError("boom")

    fake = types.SimpleNamespace(
        StreamParser=Broken, StartElement=engine.StartElement, Element=engine.Element, EndElement=engine.EndElement
    )
    with pytest.raises(KeyError):
        fz.test_one_input(fz.make_input([HEADER]), fake)


def test_engine_selection() -> None:
    assert fz.load_engine("pure").__name__ == "xmpp._tokens_py"
    with pytest.raises(ValueError):
        fz.load_engine("nope")
    from xmpp import xmlstream

    assert fz.load_engine(None).StreamParser is xmlstream.StreamParser


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512))
def test_random_bytes_keep_the_invariant(engine: types.ModuleType, data: bytes) -> None:
    fz.test_one_input(data, engine)


_MARKUP = st.sampled_from(
    [b"<", b">", b"/>", b"</", b"<message>", b"</message>", b"<body>", b"</body>", b"xmlns='urn:x'", b" a='1'",
     b"&amp;", b"&lt;", b"&#x41;", b"&bogus;", b"<!--", b"<?x?>", b"<![CDATA[", b"]]>", b"<!DOCTYPE",
     b"</stream:stream>", b"\xc3\xa9", b"\xff", b"\x00", b" ", b"text", b"<p:a xmlns:p='urn:p'>", b"</p:a>"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.lists(_MARKUP, max_size=30).map(b"".join),
    cuts=st.lists(st.integers(0, 2000), max_size=3),
    reset=st.one_of(st.none(), st.integers(0, 3)),
    small=st.booleans(),
)
def test_markup_soup_keeps_the_invariant(
    engine: types.ModuleType, body: bytes, cuts: list[int], reset: int | None, small: bool
) -> None:
    stream = HEADER + body
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(stream[last:p])
        last = p
    chunks.append(stream[last:])
    if reset is not None and reset >= len(chunks):
        reset = None
    fz.test_one_input(fz.make_input(chunks, reset_before=reset, small_limits=small), engine)


def _outcome(engine: types.ModuleType, chunks: list[bytes], reset: int | None, small: bool) -> list[object]:
    """What a parser makes of ``chunks``: events (elements as their bytes) and error conditions."""
    p = engine.StreamParser(max_stanza_bytes=300, max_depth=6) if small else engine.StreamParser()
    out: list[object] = []
    for i, c in enumerate(chunks):
        if i == reset:
            p.reset()
            out.append("reset")
        try:
            evs = p.feed(c)
        except StreamError as err:
            evs = list(err.events)
            out.append(err.condition)
        for ev in evs:
            if type(ev) is engine.Element:
                out.append((type(ev).__name__, [repr(t) for t in ev], bytes(ev)))
            else:
                out.append(repr(ev))
    return out


_SOUP = st.sampled_from(
    [b"<m>", b"</m>", b"<b>", b"</b>", b"<", b">", b"/>", b"</", b" a='1'", b" p:a='2'", b" xmlns:p='urn:p'",
     b" xmlns='urn:x'", b" xmlns=''", b" xmlns:p='xmlns'", b" xml:lang='en'", b"<xml:x>", b"</xml:x>", b"<p:y>",
     b"</p:y>", b"x" * 200, b" " * 100, b"&amp;", b"&#13;", b"\r\n", b"\xc3\xa9", b"\xff", b"\x00", b"t",
     b"<![CDATA[x]]>", b"<!--", b"&bogus;", b"'", b"</stream:stream>", b"<a><b><c><d><e><f><g>"]
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.lists(_SOUP, max_size=30).map(b"".join),
    cuts=st.lists(st.integers(0, 3000), max_size=3),
    reset=st.one_of(st.none(), st.integers(1, 3)),
    small=st.booleans(),
)
def test_both_engines_agree(body: bytes, cuts: list[int], reset: int | None, small: bool) -> None:
    """Two implementations, one behaviour: the same events, bytes and conditions."""
    compiled = pytest.importorskip("xmpp._tokens")
    import xmpp._tokens_py as pure

    stream = HEADER + body
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    assert _outcome(compiled, chunks, reset, small) == _outcome(pure, chunks, reset, small)


@pytest.mark.parametrize(
    "stanza",
    [b"<x xmlns:a='xmlns' a:b='c'/>", b"<x xmlns:a='xmlns'><a:y/></x>", b"<x><y xmlns='xmlns'/></x>"],
)
def test_attribute_in_the_namespace_named_xmlns(engine: types.ModuleType, stanza: bytes) -> None:
    """Found by fuzz/fuzz_stream.py: an attribute whose prefix was bound to the namespace
    name 'xmlns' came out as Attr(Name('xmlns', local), v), the Go form of a namespace
    declaration, so bytes(element) turned it into one.  Now the declaration is refused."""
    fz.test_one_input(fz.make_input([HEADER + stanza]), engine)
    p = engine.StreamParser()
    with pytest.raises(StreamError) as info:
        p.feed(HEADER + b"<iq type='get' id='1'/>" + stanza)
    assert info.value.condition is Condition.NOT_WELL_FORMED
    assert len(info.value.events) == 2


def test_element_in_the_xml_namespace_round_trips(engine: types.ModuleType) -> None:
    """An element in the xml namespace is written xml:local, never with xmlns= (which is refused)."""
    fz.test_one_input(fz.make_input([HEADER + b"<xml:x><xml:y xml:lang='en'/></xml:x>"]), engine)
    el = engine.StreamParser().feed(HEADER + b"<xml:x/>")[1]
    assert bytes(el) == b"<xml:x/>"


def test_the_target_catches_an_attribute_that_reads_as_a_declaration(engine: types.ModuleType) -> None:
    """The invariant check itself: an element carrying a Go-form declaration fails it."""
    N = engine.Name
    el = engine.Element.from_tokens([
        engine.StartElement(N("jabber:client", "x"), [engine.Attr(N("xmlns", "b"), "urn:b")]),
        engine.EndElement(N("jabber:client", "x")),
    ])
    with pytest.raises(AssertionError, match="namespace declaration"):
        fz._check_element(engine, el)
