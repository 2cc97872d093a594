"""Property: tokens -> Encoder -> StreamParser gives the same tokens back, on both engines.

Random element trees (namespaces that change as they nest, attributes in no
namespace, in the ``xml:`` namespace and in other namespaces, text with
characters that need escaping and characters beyond ASCII, always legal in
XML 1.0) are encoded inside a stream header and parsed again with random
chunk splits.  Also: ``bytes(element)`` parses back to an equal element, and
the compiled and the pure encoder write the same bytes.
"""

from __future__ import annotations

import importlib
import os
import types
from dataclasses import dataclass
from typing import Any, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

XML_NS = "http://www.w3.org/XML/1998/namespace"
STREAM_NS = "http://etherx.jabber.org/streams"
CLIENT_HEADER = f"<stream:stream xmlns='jabber:client' xmlns:stream='{STREAM_NS}'>".encode()
BARE_HEADER = f"<stream:stream xmlns:stream='{STREAM_NS}'>".encode()

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- random trees -------------------------------------------------------------

NAMESPACES = [
    "jabber:client",
    "",
    "urn:a",
    "urn:xmpp:delay",
    "http://jabber.org/protocol/disco#info",
    "http://example.com/q?a=1&b=<2>\"'",
    "urn:ünïcode:名前",
]
ATTR_NAMESPACES = ["urn:a", "urn:b", "http://example.com/attrs", "urn:ünïcode:名前"]

_name_start = st.sampled_from("abcxyzABCXYZ_éßжλ漢")
_name_rest = st.text(st.sampled_from("abcxyz019._-éжλ漢·"), max_size=6)
LOCAL = st.builds(lambda a, b: a + b, _name_start, _name_rest).filter(
    lambda s: not s.lower().startswith("xml")
)

# Characters legal in XML 1.0: tab, LF, CR, and everything from U+0020 but
# surrogates, U+FFFE and U+FFFF.  The sampled ones are those that need
# escaping, or that parsers like to mangle.
_legal = st.characters(
    min_codepoint=0x20,
    exclude_categories=["Cs"],
    exclude_characters="\ufffe\uffff",
)
_tricky = st.sampled_from("<>&\"'\t\n\r\x7f\x85\u2028\U0001f600é ")
TEXT = st.one_of(
    st.text(st.one_of(_tricky, _legal), max_size=10),
    st.sampled_from(["", "\r\n", "]]>", "&amp;", "a < b && c > d", "  "]),
)


@dataclass(frozen=True)
class Node:
    """A random element: namespace, local name, attributes, and children."""

    space: str
    local: str
    attrs: tuple[tuple[str, str, str], ...]  # (space, local, value)
    children: tuple[Union[str, "Node"], ...]


def _unique_attrs(attrs: list[tuple[str, str, str]]) -> tuple[tuple[str, str, str], ...]:
    seen: set[tuple[str, str]] = set()
    out = []
    for space, local, value in attrs:
        if (space, local) not in seen:
            seen.add((space, local))
            out.append((space, local, value))
    return tuple(out)


ATTR = st.one_of(
    st.tuples(st.just(""), LOCAL, TEXT),
    st.tuples(st.just(XML_NS), st.just("lang"), st.sampled_from(["en", "de-CH", "", "zh-Hant"])),
    st.tuples(st.sampled_from(ATTR_NAMESPACES), LOCAL, TEXT),
)
ATTRS = st.lists(ATTR, max_size=4).map(_unique_attrs)


def _node(children: st.SearchStrategy[tuple[Any, ...]]) -> st.SearchStrategy[Node]:
    return st.builds(Node, st.sampled_from(NAMESPACES), LOCAL, ATTRS, children)


LEAF = _node(st.one_of(st.just(()), st.tuples(TEXT)))
TREE: st.SearchStrategy[Node] = st.recursive(
    LEAF,
    lambda kids: _node(st.lists(st.one_of(TEXT, kids), max_size=4).map(tuple)),
    max_leaves=10,
)


def tokens_of(engine: types.ModuleType, node: Node) -> list[Any]:
    """The tokens of ``node``, made of ``engine``'s classes."""
    e = engine
    out: list[Any] = []

    def walk(n: Node) -> None:
        name = e.Name(n.space, n.local)
        out.append(e.StartElement(name, [e.Attr(e.Name(s, lo), v) for s, lo, v in n.attrs]))
        for c in n.children:
            if isinstance(c, str):
                out.append(e.CharData(c))
            else:
                walk(c)
        out.append(e.EndElement(name))

    walk(node)
    return out


def normalized(engine: types.ModuleType, toks: list[Any]) -> list[Any]:
    """Adjacent character data merged, empty character data dropped."""
    out: list[Any] = []
    for tok in toks:
        if type(tok) is engine.CharData:
            if not tok.text:
                continue
            if out and type(out[-1]) is engine.CharData:
                out[-1] = engine.CharData(out[-1].text + tok.text)
                continue
        out.append(tok)
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


def feed_all(engine: types.ModuleType, chunks: list[bytes]) -> list[Any]:
    parser = engine.StreamParser()
    events: list[Any] = []
    for c in chunks:
        events.extend(parser.feed(c))
    return events


def compiled_engine() -> types.ModuleType:
    try:
        return importlib.import_module("xmpp._tokens")
    except ImportError as exc:  # pragma: no cover - only where the extension is not built
        if os.environ.get("XMPP_REQUIRE_COMPILED"):
            pytest.fail(f"compiled engine required but did not load: {exc}")
        pytest.skip(f"compiled engine not built: {exc}")


# -- properties -------------------------------------------------------------------


@SETTINGS
@given(trees=st.lists(TREE, min_size=1, max_size=3), data=st.data())
def test_tokens_survive_encoder_and_parser(engine: types.ModuleType, trees: list[Node], data: st.DataObject) -> None:
    toks = [tokens_of(engine, t) for t in trees]
    enc = engine.Encoder(ns="jabber:client")
    for i, tt in enumerate(toks):
        enc.encode(tt)
        if i % 2:
            enc.write_token(engine.CharData(" \n"))  # a keepalive between stanzas
    stream = CLIENT_HEADER + enc.flush() + b"</stream:stream>"
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8), label="cuts")
    events = feed_all(engine, split(stream, cuts))

    assert len(events) == len(trees) + 2
    assert type(events[0]) is engine.StartElement
    assert events[0].name == engine.Name(STREAM_NS, "stream")
    assert type(events[-1]) is engine.EndElement
    for ev, tt in zip(events[1:-1], toks):
        assert type(ev) is engine.Element
        assert list(ev) == normalized(engine, tt)


@SETTINGS
@given(tree=TREE)
def test_bytes_of_an_element_parse_back(engine: types.ModuleType, tree: Node) -> None:
    el = engine.Element.from_tokens(tokens_of(engine, tree))
    standalone = bytes(el)
    # bytes(element) declares its namespaces itself: parse it where no default
    # namespace is in scope
    events = feed_all(engine, [BARE_HEADER, standalone])
    assert len(events) == 2
    again = events[1]
    assert again == el
    assert list(again) == list(el)
    assert bytes(again) == standalone
    # encode(ns) inside a jabber:client stream gives the same element too
    events = feed_all(engine, [CLIENT_HEADER + el.encode("jabber:client")])
    assert events[1] == el


@SETTINGS
@given(tree=TREE, ns=st.sampled_from(["", "jabber:client", "urn:a"]))
def test_both_engines_write_the_same_bytes(tree: Node, ns: str) -> None:
    compiled = compiled_engine()
    pure = importlib.import_module("xmpp._tokens_py")
    outs = []
    for e in (compiled, pure):
        enc = e.Encoder(ns=ns)
        enc.encode(tokens_of(e, tree))
        el = e.Element.from_tokens(tokens_of(e, tree))
        outs.append((enc.flush(), bytes(el), el.encode(ns)))
    assert outs[0] == outs[1]


def test_the_strategies_reach_the_interesting_cases() -> None:
    """The generators do make what the properties claim to cover (a fixed sample)."""
    seen = {"nested ns change": False, "xml:lang": False, "ns attr": False, "escape": False, "non-ascii": False}

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(tree=TREE)
    def probe(tree: Node) -> None:
        def walk(n: Node, parent: str | None) -> None:
            if parent is not None and parent != n.space:
                seen["nested ns change"] = True
            for s, _lo, v in n.attrs:
                seen["xml:lang"] |= s == XML_NS
                seen["ns attr"] |= s in ATTR_NAMESPACES
                seen["escape"] |= any(ch in v for ch in "<&\"\r\t")
            for c in n.children:
                if isinstance(c, str):
                    seen["escape"] |= any(ch in c for ch in "<>&\r")
                    seen["non-ascii"] |= any(ord(ch) > 127 for ch in c)
                else:
                    walk(c, n.space)

        walk(tree, None)

    probe()
    assert all(seen.values()), seen
