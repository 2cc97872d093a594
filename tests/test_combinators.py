"""Combinators over token readers in :mod:`xmpp.xmlstream`, on both engines.

Tokens are made from the engine under test (the ``engine`` fixture), so every
combinator is shown to work on the compiled engine's token classes and on the
pure twin's, whichever engine :mod:`xmpp.xmlstream` itself picked.
"""

from __future__ import annotations

import doctest
import types
from typing import Any

import pytest

import xmpp.xmlstream as xs

STREAM_HEAD = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)


class Toks:
    """Short constructors for the tokens of one engine."""

    def __init__(self, engine: types.ModuleType) -> None:
        self.e = engine

    def name(self, local: str, space: str = "") -> Any:
        return self.e.Name(space, local)

    def start(self, local: str, space: str = "", **attrs: str) -> Any:
        return self.e.StartElement(
            self.e.Name(space, local), [self.e.Attr(self.e.Name("", k), v) for k, v in attrs.items()]
        )

    def end(self, local: str, space: str = "") -> Any:
        return self.e.EndElement(self.e.Name(space, local))

    def text(self, s: str) -> Any:
        return self.e.CharData(s)

    def parse(self, xml: bytes) -> Any:
        """The single top-level element of ``xml`` on a jabber:client stream."""
        events = self.e.StreamParser().feed(STREAM_HEAD + xml)
        assert len(events) == 2
        return events[1]


@pytest.fixture
def t(engine: types.ModuleType) -> Toks:
    return Toks(engine)


def encode(engine: types.ModuleType, reader: Any, ns: str = "") -> bytes:
    enc = engine.Encoder(ns=ns)
    enc.encode(reader)
    return bytes(enc.flush())


# -- the module's own examples ----------------------------------------------


def test_docstring_examples_run() -> None:
    result = doctest.testmod(xs, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 40
    assert result.failed == 0


def test_all_names_exist_and_are_documented() -> None:
    for name in xs.__all__:
        obj = getattr(xs, name)
        if callable(obj) and not isinstance(obj, type) and name[0].islower():
            assert obj.__doc__ and ">>>" in obj.__doc__, name


def test_encoder_is_a_token_writer(engine: types.ModuleType) -> None:
    assert isinstance(engine.Encoder(), xs.TokenWriter)
    assert not isinstance(object(), xs.TokenWriter)


# -- wrap / unwrap / inner / skip -------------------------------------------


def test_wrap(t: Toks) -> None:
    a = t.start("a", "urn:a", id="1")
    assert list(xs.wrap([t.text("x")], a)) == [a, t.text("x"), t.end("a", "urn:a")]
    assert list(xs.wrap(None, a)) == [a, t.end("a", "urn:a")]
    assert list(xs.wrap([], a)) == [a, t.end("a", "urn:a")]
    # nesting wraps gives nested elements; the engine can hold the result
    el = t.e.Element.from_tokens(xs.wrap(xs.wrap([t.text("hi")], t.start("body")), t.start("message")))
    assert bytes(el) == b"<message><body>hi</body></message>"


def test_wrap_an_element(t: Toks) -> None:
    body = t.parse(b"<body>hi</body>")
    msg = t.start("message", "jabber:client")
    out = list(xs.wrap(body, msg))
    assert out[0] == msg and out[-1] == msg.end()
    assert out[1:-1] == list(body)


def test_unwrap(t: Toks) -> None:
    msg = t.parse(b"<message to='a@b'><body>hi</body><x xmlns='urn:x'/></message>")
    inside, start = xs.unwrap(msg)
    assert start == msg.start
    assert list(inside) == list(msg)[1:-1]
    # unwrap then wrap is the identity
    inside, start = xs.unwrap(msg)
    assert list(xs.wrap(inside, start)) == list(msg)


def test_unwrap_leaves_what_follows(t: Toks) -> None:
    it = iter([t.start("a"), t.text("1"), t.end("a"), t.start("b"), t.end("b")])
    inside, start = xs.unwrap(it)
    assert start == t.start("a")
    assert list(inside) == [t.text("1")]
    assert list(it) == [t.start("b"), t.end("b")]


def test_unwrap_empty_element(t: Toks) -> None:
    inside, start = xs.unwrap([t.start("a"), t.end("a")])
    assert list(inside) == []
    assert start == t.start("a")


def test_unwrap_refuses_what_is_not_an_element(t: Toks) -> None:
    with pytest.raises(ValueError, match="empty"):
        xs.unwrap([])
    with pytest.raises(ValueError, match="StartElement"):
        xs.unwrap([t.text("x"), t.start("a"), t.end("a")])
    with pytest.raises(ValueError, match="StartElement"):
        xs.unwrap([t.end("a")])


def test_unwrap_unbalanced(t: Toks) -> None:
    inside, _ = xs.unwrap([t.start("a"), t.start("b"), t.end("a")])
    with pytest.raises(ValueError, match=r"</a> does not match <b>"):
        list(inside)
    inside, _ = xs.unwrap([t.start("a"), t.end("b")])
    with pytest.raises(ValueError, match=r"</b> does not match <a>"):
        list(inside)
    inside, _ = xs.unwrap([t.start("a"), t.text("x")])
    with pytest.raises(ValueError, match=r"ended inside <a>"):
        list(inside)
    inside, _ = xs.unwrap([t.start("a", "urn:a"), t.start("b")])
    with pytest.raises(ValueError, match=r"ended inside <b>"):
        list(inside)


def test_unbalanced_is_caught_across_namespaces(t: Toks) -> None:
    # same local name, other namespace: not the matching end
    inside, _ = xs.unwrap([t.start("a", "urn:1"), t.end("a", "urn:2")])
    with pytest.raises(ValueError, match=r"\{urn:2\}a"):
        list(inside)


def test_inner(t: Toks) -> None:
    toks = [t.start("a"), t.start("b"), t.text("x"), t.end("b"), t.text("y"), t.end("a"), t.text("z")]
    it = iter(toks)
    start = next(it)
    assert list(xs.inner(it, start)) == toks[1:5]
    assert list(it) == [t.text("z")]


def test_inner_is_lazy_and_stops_at_the_end(t: Toks) -> None:
    it = iter([t.end("a"), t.start("b"), t.end("b")])
    r = xs.inner(it)
    assert next(it) == t.end("a")  # nothing was read by inner() itself
    it = iter([t.end("a"), t.start("b"), t.end("b")])
    r = xs.inner(it)
    assert list(r) == []
    assert list(r) == []  # exhausted for good
    assert next(it) == t.start("b")


def test_inner_unbalanced(t: Toks) -> None:
    with pytest.raises(ValueError, match="ended inside"):
        list(xs.inner(iter([t.text("x")])))
    with pytest.raises(ValueError, match="ended inside"):
        list(xs.inner(iter([])))
    with pytest.raises(ValueError, match=r"</c> does not match <b>"):
        list(xs.inner(iter([t.start("b"), t.end("c"), t.end("a")])))
    # the outer end is checked against start when it is given
    with pytest.raises(ValueError, match=r"</x> does not match <a>"):
        list(xs.inner(iter([t.end("x")]), t.start("a")))
    assert list(xs.inner(iter([t.end("x")]))) == []


def test_skip(t: Toks) -> None:
    it = iter([t.start("b"), t.start("c"), t.end("c"), t.end("b"), t.text("t"), t.end("a"), t.text("after")])
    xs.skip(it)
    assert list(it) == [t.text("after")]
    it = iter([t.end("a")])
    xs.skip(it, t.start("a"))
    assert list(it) == []


def test_skip_unbalanced(t: Toks) -> None:
    with pytest.raises(ValueError, match="ended inside <b>"):
        xs.skip(iter([t.start("b"), t.text("x")]))
    with pytest.raises(ValueError, match="ended inside"):
        xs.skip(iter([]))
    with pytest.raises(ValueError, match="does not match"):
        xs.skip(iter([t.start("b"), t.end("a")]))


# -- multi_reader / tee_reader / read_all / copy -------------------------------


def test_multi_reader(t: Toks) -> None:
    el = t.parse(b"<a><b/></a>")
    assert list(xs.multi_reader()) == []
    assert list(xs.multi_reader([], [])) == []
    out = list(xs.multi_reader(el, [t.text("x")], el))
    assert out == list(el) + [t.text("x")] + list(el)


def test_multi_reader_reads_lazily(t: Toks) -> None:
    seen: list[Any] = []
    r = xs.multi_reader(xs.inspect([t.text("1")], seen.append), xs.inspect([t.text("2")], seen.append))
    assert next(r) == t.text("1")
    assert seen == [t.text("1")]


def test_tee_reader(t: Toks) -> None:
    el = t.parse(b"<message><body>a &amp; b</body></message>")
    enc = t.e.Encoder(ns="jabber:client")
    out = list(xs.tee_reader(el, enc))
    assert out == list(el)
    assert enc.flush() == b"<message><body>a &amp; b</body></message>"


def test_tee_reader_writes_as_it_reads(t: Toks) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.toks: list[Any] = []
            self.flushed = 0

        def write_token(self, tok: Any) -> None:
            self.toks.append(tok)

        def flush(self) -> None:
            self.flushed += 1

    rec = Recorder()
    r = xs.tee_reader([t.text("1"), t.text("2")], rec)
    assert rec.toks == []
    next(r)
    assert rec.toks == [t.text("1")]
    list(r)
    assert rec.toks == [t.text("1"), t.text("2")]
    assert rec.flushed == 0
    assert isinstance(rec, xs.TokenWriter)


def test_read_all(t: Toks) -> None:
    el = t.parse(b"<a x='1'>t<b/></a>")
    assert xs.read_all(el) == list(el)
    assert xs.read_all([]) == []
    assert xs.read_all(iter([t.text("x")])) == [t.text("x")]


def test_copy(t: Toks) -> None:
    el = t.parse(b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>")
    chunks: list[bytes] = []
    enc = t.e.Encoder(chunks.append, ns="jabber:client")
    assert xs.copy(enc, el) == 4
    # copy flushed: the bytes reached the sink
    assert b"".join(chunks) == b'<iq type="get" id="1"><ping xmlns="urn:xmpp:ping"/></iq>'
    assert xs.copy(enc, []) == 0


def test_copy_propagates_encoder_errors(t: Toks) -> None:
    enc = t.e.Encoder()
    with pytest.raises(ValueError):
        xs.copy(enc, [t.start("a"), t.end("b")])


# -- iter_children ---------------------------------------------------------------


def test_iter_children(t: Toks) -> None:
    q = t.parse(
        b"<iq type='result'><query xmlns='jabber:iq:roster'> \n"
        b"<item jid='a@b'><group>G1</group><group>G2</group></item>text between"
        b"<item jid='c@d'/>\n</query></iq>"
    )
    query = q.find("query")
    got = []
    for start, inside in xs.iter_children(query):
        got.append((start.get("jid"), [getattr(x, "text") for x in inside if type(x) is t.e.CharData]))
    assert got == [("a@b", ["G1", "G2"]), ("c@d", [])]


def test_iter_children_reconstructs_children(t: Toks) -> None:
    msg = t.parse(b"<message><body>hi</body><thread>t1</thread><x xmlns='urn:x'><y/></x></message>")
    kids = [list(xs.wrap(inside, start)) for start, inside in xs.iter_children(msg)]
    assert kids == [list(c) for c in msg.children()]


def test_iter_children_skips_what_the_caller_left(t: Toks) -> None:
    msg = t.parse(b"<m><a><deep><er/></deep>x</a><b>y</b><c/></m>")
    names = []
    for n, (start, inside) in enumerate(xs.iter_children(msg)):
        names.append(start.name.local)
        if n == 0:
            first: Any = next(inside)
            assert first.name.local == "deep"  # read a little, leave the rest
    assert names == ["a", "b", "c"]


def test_iter_children_ends_at_the_outer_end(t: Toks) -> None:
    it = iter([t.start("a"), t.start("b"), t.end("b"), t.end("a"), t.text("rest")])
    assert [s.name.local for s, _ in xs.iter_children(it)] == ["b"]
    assert list(it) == [t.text("rest")]


def test_iter_children_edge_cases(t: Toks) -> None:
    assert list(xs.iter_children([t.start("a"), t.end("a")])) == []
    assert list(xs.iter_children([t.start("a"), t.text("only text"), t.end("a")])) == []
    with pytest.raises(ValueError, match="empty"):
        list(xs.iter_children([]))
    with pytest.raises(ValueError, match="StartElement"):
        list(xs.iter_children([t.text("x")]))


def test_iter_children_unbalanced(t: Toks) -> None:
    with pytest.raises(ValueError, match="ended inside <a>"):
        list(xs.iter_children([t.start("a"), t.start("b"), t.end("b")]))
    with pytest.raises(ValueError, match="ended inside <b>"):
        list(xs.iter_children([t.start("a"), t.start("b")]))
    with pytest.raises(ValueError, match=r"</x> does not match <a>"):
        list(xs.iter_children([t.start("a"), t.end("x")]))
    with pytest.raises(ValueError, match=r"</x> does not match <b>"):
        list(xs.iter_children([t.start("a"), t.start("b"), t.end("x"), t.end("a")]))


# -- transformers ---------------------------------------------------------------


def test_remove_attr(t: Toks) -> None:
    el = t.parse(b"<message id='1' to='a@b' xml:lang='en'><body id='2'>x</body></message>")
    out = list(xs.remove_attr(el, lambda s, a: a.name.local == "id"))
    assert encode(t.e, out, "jabber:client") == b'<message to="a@b" xml:lang="en"><body>x</body></message>'
    # the predicate sees the start element too
    out = list(xs.remove_attr(el, lambda s, a: s.name.local == "body"))
    assert encode(t.e, out, "jabber:client") == (
        b'<message id="1" to="a@b" xml:lang="en"><body>x</body></message>'
    )
    # an untouched start element is the same object
    out = list(xs.remove_attr(el, lambda s, a: False))
    assert out == list(el)
    assert type(out[0]) is t.e.StartElement
    assert list(xs.remove_attr([], lambda s, a: True)) == []


def test_remove_namespaced_attr(t: Toks) -> None:
    xml_ns = "http://www.w3.org/XML/1998/namespace"
    el = t.parse(b"<message xml:lang='en' lang='x'/>")
    out: list[Any] = list(xs.remove_attr(el, lambda s, a: a.name.space == xml_ns))
    assert out[0].attrs == (t.e.Attr(t.name("lang"), "x"),)


def test_insert_first_and_last(t: Toks) -> None:
    delay = t.parse(b"<delay xmlns='urn:xmpp:delay' stamp='s'/>")
    msg = t.parse(b"<message><body>a</body></message>")
    first = xs.insert(t.name("message", "jabber:client"), delay)
    assert encode(t.e, first(msg), "jabber:client") == (
        b'<message><delay xmlns="urn:xmpp:delay" stamp="s"/><body>a</body></message>'
    )
    last = xs.insert(t.name("message", "jabber:client"), delay, last=True)
    assert encode(t.e, last(msg), "jabber:client") == (
        b'<message><body>a</body><delay xmlns="urn:xmpp:delay" stamp="s"/></message>'
    )


def test_insert_every_match_and_wildcards(t: Toks) -> None:
    el = t.parse(b"<a><b/><c><b>t</b></c><b xmlns='urn:other'/></a>")
    payload = [t.text("!")]
    exact = xs.insert(t.name("b", "jabber:client"), payload)
    assert encode(t.e, exact(el), "jabber:client") == (
        b'<a><b>!</b><c><b>!t</b></c><b xmlns="urn:other"/></a>'
    )
    any_space = xs.insert(t.name("b"), payload)
    assert encode(t.e, any_space(el), "jabber:client") == (
        b'<a><b>!</b><c><b>!t</b></c><b xmlns="urn:other">!</b></a>'
    )
    any_local = xs.insert(t.name("", "urn:other"), payload)
    assert encode(t.e, any_local(el), "jabber:client") == (
        b'<a><b/><c><b>t</b></c><b xmlns="urn:other">!</b></a>'
    )
    nothing = xs.insert(t.name("zzz"), payload)
    assert list(nothing(el)) == list(el)
    # the payload is read once and reused; a generator is fine
    gen = xs.insert(t.name("b"), (tok for tok in payload))
    assert encode(t.e, gen(el), "jabber:client").count(b"!") == 3


def test_map_tokens(t: Toks) -> None:
    el = t.parse(b"<m><body>hi</body><x/></m>")

    def upper(tok: Any) -> Any:
        if type(tok) is t.e.CharData:
            return t.text(tok.text.upper())
        return tok

    assert encode(t.e, xs.map_tokens(el, upper), "jabber:client") == b"<m><body>HI</body><x/></m>"
    dropped = list(xs.map_tokens(el, lambda tok: None if type(tok) is t.e.CharData else tok))
    assert [type(x).__name__ for x in dropped].count("CharData") == 0
    assert len(dropped) == len(list(el)) - 1
    assert list(xs.map_tokens([], upper)) == []


def test_inspect(t: Toks) -> None:
    el = t.parse(b"<m><body>hi</body></m>")
    seen: list[Any] = []
    out = list(xs.inspect(el, seen.append))
    assert out == list(el) == seen
    with pytest.raises(RuntimeError, match="boom"):
        list(xs.inspect(el, lambda tok: (_ for _ in ()).throw(RuntimeError("boom"))))


# -- fmt / pretty ------------------------------------------------------------------


def test_pretty_element(t: Toks) -> None:
    el = t.parse(
        b"<iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='v7'>"
        b"<item jid='nurse@example.com' name='Nurse'><group>Friends</group></item>"
        b"<item jid='x@y'/></query></iq>"
    )
    assert xs.pretty(el, "jabber:client") == (
        '<iq type="result" id="r1">\n'
        '  <query xmlns="jabber:iq:roster" ver="v7">\n'
        '    <item jid="nurse@example.com" name="Nurse">\n'
        "      <group>Friends</group>\n"
        "    </item>\n"
        '    <item jid="x@y"/>\n'
        "  </query>\n"
        "</iq>"
    )


def test_fmt_collapses_existing_whitespace(t: Toks) -> None:
    already = t.parse(b"<a>\n  <b>\n    <c>text</c>\n  </b>\n  \n</a>")
    plain = t.parse(b"<a><b><c>text</c></b></a>")
    assert xs.pretty(already) == xs.pretty(plain)
    # formatting twice changes nothing more
    once = xs.pretty(plain, indent="\t")
    el = t.parse(once.encode())
    assert xs.pretty(el, indent="\t") == once


def test_fmt_keeps_text_only_elements_on_one_line(t: Toks) -> None:
    el = t.parse(b"<m><body>  two  spaces \n and a newline </body><empty/><ws> </ws></m>")
    assert xs.pretty(el, "jabber:client") == (
        "<m>\n  <body>  two  spaces \n and a newline </body>\n  <empty/>\n  <ws> </ws>\n</m>"
    )


def test_fmt_mixed_content(t: Toks) -> None:
    el = t.parse(b"<p>hello <b>bold</b> world</p>")
    assert xs.pretty(el, "jabber:client") == "<p>\n  hello \n  <b>bold</b>\n   world\n</p>"


def test_fmt_prefix_and_indent(t: Toks) -> None:
    el = t.parse(b"<a><b/></a>")
    assert xs.pretty(el, "jabber:client", indent="", prefix="") == "<a>\n<b/>\n</a>"
    assert xs.pretty(el, "jabber:client", indent="..", prefix="C: ") == "C: <a>\nC: ..<b/>\nC: </a>"


def test_fmt_tokens(t: Toks) -> None:
    toks = list(xs.fmt([t.start("a"), t.start("b"), t.end("b"), t.end("a")]))
    assert toks == [t.start("a"), t.text("\n  "), t.start("b"), t.end("b"), t.text("\n"), t.end("a")]
    # the white space is made of the engine's own CharData
    assert all(type(x) in (t.e.StartElement, t.e.EndElement, t.e.CharData) for x in toks)
    assert list(xs.fmt([])) == []
    assert xs.pretty([]) == ""


def test_fmt_several_top_level_elements(t: Toks) -> None:
    toks = [t.start("a"), t.end("a"), t.text(" \n"), t.start("b"), t.text("x"), t.end("b"), t.text("tail")]
    enc = t.e.Encoder()
    for tok in xs.fmt(toks):
        enc.write_token(tok)
    assert enc.flush() == b"<a/>\n<b>x</b>\ntail"


def test_fmt_unbalanced(t: Toks) -> None:
    with pytest.raises(ValueError, match=r"</b> does not match <a>"):
        list(xs.fmt([t.start("a"), t.end("b")]))
    with pytest.raises(ValueError, match=r"</c> does not match <b>"):
        list(xs.fmt([t.start("a"), t.start("b"), t.start("x"), t.end("x"), t.end("c")]))
    with pytest.raises(ValueError, match="closes no open element"):
        list(xs.fmt([t.start("a"), t.end("a"), t.end("a")]))
    with pytest.raises(ValueError, match="ended inside <a>"):
        list(xs.fmt([t.start("a")]))
    with pytest.raises(ValueError, match="ended inside <a>"):
        list(xs.fmt([t.start("a"), t.start("b"), t.end("b")]))
    with pytest.raises(ValueError, match="ended inside <b>"):
        xs.pretty([t.start("a"), t.start("b"), t.text("x")])


# -- both engines at once ---------------------------------------------------------


def test_tokens_of_either_engine_are_recognised() -> None:
    import xmpp._tokens_py as pure

    try:
        import xmpp._tokens as compiled
    except ImportError:  # pragma: no cover - only where the extension is not built
        pytest.skip("compiled engine not built")
    for e in (pure, compiled):
        el = Toks(e).parse(b"<a><b>x</b></a>")
        assert xs.pretty(el) == '<a xmlns="jabber:client">\n  <b>x</b>\n</a>'
        inside, start = xs.unwrap(el)
        assert type(start) is e.StartElement
        assert [s.name.local for s, _ in xs.iter_children(el)] == ["b"]


def test_non_tokens_are_refused(t: Toks) -> None:
    with pytest.raises(TypeError, match="not a token"):
        list(xs.fmt([("a", "b")]))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a token"):
        xs.skip(iter([t.parse(b"<a/>")]))  # an Element is a reader, not a token
