"""Micro-benchmarks of the engine, on both engines (``pytest benchmarks/ --benchmark-only``).

Nothing here asserts a timing; each benchmark checks only that it did the
work it claims to measure.  ``benchmarks/throughput.py`` prints the
side-by-side table against pyexpat and ElementTree.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from corpus import HEADER, make_stream  # noqa: E402

N = 2000
CHUNK = 4096
MESSAGE = (
    b"<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' type='chat' "
    b"id='a81f3b2c-17' xml:lang='en'><body>Wherefore art thou, Romeo? Deny thy father &amp; "
    b"refuse thy name.</body><request xmlns='urn:xmpp:receipts'/>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/>"
    b"<origin-id xmlns='urn:xmpp:sid:0' id='5a7b1c9d-18'/></message>"
)


@pytest.fixture(scope="module", params=["compiled", "pure"])
def eng(request: pytest.FixtureRequest) -> types.ModuleType:
    """The engine under test: the compiled module or the pure twin."""
    name = "xmpp._tokens" if request.param == "compiled" else "xmpp._tokens_py"
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"compiled engine not built: {exc}")


@pytest.fixture(scope="module")
def chunks() -> list[bytes]:
    """The corpus of N stanzas cut into 4 KiB chunks."""
    data = make_stream(N)
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def _message(eng: types.ModuleType) -> Any:
    (el,) = [e for e in eng.StreamParser().feed(HEADER + MESSAGE) if type(e) is eng.Element]
    return el


def test_feed_corpus(benchmark: Any, eng: types.ModuleType, chunks: list[bytes]) -> None:
    def run() -> int:
        p = eng.StreamParser()
        return sum(type(ev) is eng.Element for c in chunks for ev in p.feed(c))

    assert benchmark(run) == N


def test_feed_corpus_all_tokens(benchmark: Any, eng: types.ModuleType, chunks: list[bytes]) -> None:
    def run() -> int:
        p = eng.StreamParser()
        n = 0
        for c in chunks:
            for ev in p.feed(c):
                if type(ev) is eng.Element:
                    n += len(list(ev))
        return n

    assert benchmark(run) > 4 * N


def test_encode_message(benchmark: Any, eng: types.ModuleType) -> None:
    el = _message(eng)
    out = benchmark(el.encode, "jabber:client")
    assert out.startswith(b"<message to=") and out.endswith(b"</message>")


def test_encoder_over_tokens(benchmark: Any, eng: types.ModuleType) -> None:
    toks = list(_message(eng))
    enc = eng.Encoder(ns="jabber:client")

    def run() -> bytes:
        enc.encode(toks)
        return enc.flush()  # type: ignore[no-any-return]

    assert benchmark(run).startswith(b"<message to=")


def test_find_and_get(benchmark: Any, eng: types.ModuleType) -> None:
    el = _message(eng)

    def run() -> tuple[Any, ...]:
        body = el.find("body")
        return (el.get("to"), el.get("type"), el.get("id"), body.text if body is not None else None)

    assert benchmark(run)[3].startswith("Wherefore")


def test_iterate_tokens(benchmark: Any, eng: types.ModuleType) -> None:
    el = _message(eng)
    assert benchmark(lambda: len(list(el))) == 11


def test_iqtable_match(benchmark: Any, eng: types.ModuleType) -> None:
    reply = [
        e
        for e in eng.StreamParser().feed(HEADER + b"<iq type='result' id='q1' from='example.com'/>")
        if type(e) is eng.Element
    ][0]
    table = eng.IQTable()
    accept = frozenset({"", "example.com"})

    def run() -> object:
        table.add("q1", accept, "w")
        return table.match(reply)

    assert benchmark(run) == "w"
