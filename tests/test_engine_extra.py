"""The benchmark corpus and the throughput script, checked as ordinary tests.

The benchmarks themselves live in ``benchmarks/`` (outside the default test
run); these tests make sure the corpus is what it promises and that the
throughput script runs and prints every row.  No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _corpus() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("bench_corpus", BENCH / "corpus.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


corpus = _corpus()


@pytest.mark.parametrize("n", [1, 37, 1500])
def test_corpus_parses_into_the_promised_elements(engine: types.ModuleType, n: int) -> None:
    data = corpus.make_stream(n)
    assert data.startswith(corpus.HEADER)
    assert corpus.stanza_count(data) == n
    p = engine.StreamParser()
    events = []
    for i in range(0, len(data), 4096):
        events.extend(p.feed(data[i : i + 4096]))
    assert type(events[0]) is engine.StartElement
    assert events[0].name == engine.Name("http://etherx.jabber.org/streams", "stream")
    elements = events[1:]
    assert len(elements) == n
    assert all(type(e) is engine.Element for e in elements)
    assert {e.name.space for e in elements} == {"jabber:client"}
    assert {e.name.local for e in elements} <= {"message", "presence", "iq"}


def test_corpus_is_deterministic_and_realistic() -> None:
    a = corpus.make_stream(400)
    assert a == corpus.make_stream(400)
    assert a != corpus.make_stream(400, seed=corpus.DEFAULT_SEED + 1)
    per_stanza = (len(a) - len(corpus.HEADER)) / 400
    assert 300 <= per_stanza <= 500, per_stanza
    for kind in (b"<message ", b"<presence ", b"<iq type='result'", b"urn:xmpp:receipts",
                 b"http://jabber.org/protocol/chatstates", b"http://jabber.org/protocol/caps",
                 b"http://jabber.org/protocol/disco#info", b"jabber:iq:roster"):
        assert kind in a, kind
    assert corpus.make_stream(0) == corpus.HEADER
    with pytest.raises(ValueError):
        corpus.make_stanzas(-1)


def test_corpus_round_trips_through_both_engines() -> None:
    """Every stanza of the corpus encodes to the same bytes on both engines."""
    import xmpp._tokens_py as pure

    engines = [pure]
    try:
        import xmpp._tokens as compiled

        engines.append(compiled)
    except ImportError:
        pass
    data = corpus.make_stream(300)
    outs = []
    for eng in engines:
        evs = eng.StreamParser().feed(data)
        encoded = [e.encode("jabber:client") for e in evs[1:]]
        # what is encoded parses back to the same tokens
        again = eng.StreamParser().feed(corpus.HEADER + b"".join(encoded))
        assert [list(e) for e in again[1:]] == [list(e) for e in evs[1:]]
        outs.append(encoded)
    assert all(o == outs[0] for o in outs)


def test_throughput_script_prints_every_row() -> None:
    env = dict(os.environ)
    env.pop("XMPP_NO_EXTENSIONS", None)
    proc = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--stanzas", "500", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rows = [
        "pure framing",
        "pure all tokens",
        "pyexpat + handlers",
        "ET XMLPullParser",
        "libexpat floor",
        "pure Element.encode",
        "ET.tostring",
    ]
    try:
        import xmpp._tokens  # noqa: F401

        rows += ["compiled framing", "compiled all tokens", "compiled Element.encode"]
    except ImportError:
        pass
    for row in rows:
        assert row in out, f"row {row!r} missing from:\n{out}"
    assert "500 stanzas" in out
    assert out.count("PASS") + out.count("MISS") == 4


def test_throughput_script_json() -> None:
    import json

    proc = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--stanzas", "200", "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["stanzas"] == 200
    assert res["parse"]["ET XMLPullParser"]["stanzas_per_s"] > 0
    assert len(res["targets"]) == 4
    assert all(isinstance(t["pass"], bool) for t in res["targets"])
