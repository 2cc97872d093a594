"""Engine throughput, side by side: ours against pyexpat and ElementTree.

Every row parses the same bytes (``benchmarks/corpus.py``: a realistic
client stream, about 400 bytes a stanza) fed in 4 KiB chunks, in the same
process, round-robin over ``--repeat`` rounds; the table shows medians of
the process's CPU time (steadier than wall time on a shared machine).

Rows:

- ``compiled|pure framing``: our ``StreamParser``; for each top-level
  ``Element`` its name and top-level attributes are read.
- ``compiled|pure all tokens``: as above, and every token of every stanza
  is read as a Python object (iterating the ``Element``).
- ``pyexpat + handlers``: pyexpat with Python handlers building tokens
  (plain tuples) for each stanza, the usual pure-Python approach.
- ``ET XMLPullParser``: ElementTree's pull parser; each stanza is detached
  from the root when it ends.
- ``libexpat floor``: pyexpat with no handlers at all, configured as the
  engine configures libexpat (UTF-8, namespace processing): the cost of
  libexpat itself.  A second floor row without namespace processing is shown
  for information.

Encoding rows time one typical chat message (the first of the corpus):
``Element.encode`` on both engines against ``xml.etree.ElementTree.tostring``
of the same stanza parsed by ElementTree.

Targets (compiled engine, one core): all tokens at least 2x the stanzas/s
of XMLPullParser; framing at least 80% of the libexpat floor; encoding at
least 3x ``ET.tostring``; the pure twin (all tokens) within 2x of
XMLPullParser.

Run: ``python benchmarks/throughput.py [--stanzas N] [--repeat K] [--json]``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import statistics
import sys
import time
import types
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from xml.parsers import expat

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from corpus import make_stream, stanza_count  # noqa: E402

CHUNK = 4096
SEP = "\x01"

#: CPU time of this process: on a machine shared with other work it is far
#: steadier than wall time, and every row is single-threaded.
_clock = time.process_time


def _engines() -> dict[str, types.ModuleType]:
    import xmpp._tokens_py as pure

    out = {}
    try:
        import xmpp._tokens as compiled

        out["compiled"] = compiled
    except ImportError as exc:  # pragma: no cover - reported in the table
        print(f"# compiled engine not available: {exc}", file=sys.stderr)
    out["pure"] = pure
    return out


# ---------------------------------------------------------------------------
# One pass over the stream for each row; each returns the stanzas it saw.


def run_framing(engine: types.ModuleType, chunks: list[bytes]) -> int:
    """Our parser; each element's name and top-level attributes are read."""
    p = engine.StreamParser()
    element = engine.Element
    n = 0
    for c in chunks:
        for ev in p.feed(c):
            if type(ev) is element:
                ev.name
                ev.attrs
                n += 1
    return n


def run_all_tokens(engine: types.ModuleType, chunks: list[bytes]) -> int:
    """Our parser; every token of every element is made and read."""
    p = engine.StreamParser()
    element = engine.Element
    n = 0
    for c in chunks:
        for ev in p.feed(c):
            if type(ev) is element:
                ev.name
                ev.attrs
                for _tok in ev:
                    pass
                n += 1
    return n


def run_pyexpat_handlers(chunks: list[bytes]) -> int:
    """pyexpat with Python handlers building (kind, name, ...) tuples per stanza."""
    state: dict[str, Any] = {"depth": 0, "toks": [], "n": 0}
    names: dict[str, tuple[str, str]] = {}
    stanzas: list[list[tuple[Any, ...]]] = []

    def name_of(raw: str) -> tuple[str, str]:
        nm = names.get(raw)
        if nm is None:
            space, sep, local = raw.rpartition(SEP)
            nm = names[raw] = (space, local) if sep else ("", raw)
        return nm

    def start(raw: str, attrs: list[str]) -> None:
        d = state["depth"]
        state["depth"] = d + 1
        if d == 0:
            return
        if d == 1:
            state["toks"] = []
        it = iter(attrs)
        state["toks"].append(("start", name_of(raw), tuple((name_of(k), v) for k, v in zip(it, it))))

    def end(raw: str) -> None:
        d = state["depth"] - 1
        state["depth"] = d
        if d == 0:
            return
        toks = state["toks"]
        toks.append(("end", name_of(raw)))
        if d == 1:
            stanzas.append(toks)
            state["n"] += 1

    def chars(text: str) -> None:
        if state["depth"] > 1:
            state["toks"].append(("chars", text))

    p = expat.ParserCreate("UTF-8", SEP)
    p.ordered_attributes = True
    p.buffer_text = True
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    for c in chunks:
        p.Parse(c, False)
        stanzas.clear()
    return int(state["n"])


def run_pull_parser(chunks: list[bytes]) -> int:
    """ElementTree's XMLPullParser; each stanza is detached when it ends."""
    p: Any = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    root: Any = None
    n = 0
    el: Any
    for c in chunks:
        p.feed(c)
        for kind, el in p.read_events():
            if kind == "start":
                if depth == 0:
                    root = el
                depth += 1
            else:
                depth -= 1
                if depth == 1:
                    assert root is not None
                    root.remove(el)
                    n += 1
    return n


def run_floor(chunks: list[bytes], namespaces: bool = True) -> int:
    """pyexpat with no handlers: the libexpat floor (counts nothing itself)."""
    p = expat.ParserCreate("UTF-8", SEP) if namespaces else expat.ParserCreate("UTF-8")
    parse = p.Parse
    for c in chunks:
        parse(c, False)
    return -1


# ---------------------------------------------------------------------------


def _time(fn: Callable[[], int]) -> tuple[float, int]:
    gc.collect()
    t0 = _clock()
    n = fn()
    return _clock() - t0, n


def _ops_per_second(fn: Callable[[], object], budget: float = 0.15) -> float:
    """Calls per second of ``fn``, timed over about ``budget`` seconds."""
    loops = 1
    while True:
        t0 = _clock()
        for _ in range(loops):
            fn()
        dt = _clock() - t0
        if dt >= budget:
            return loops / dt
        loops *= 2 if dt <= 0 else max(2, min(100, int(budget / dt) + 1))


def typical_message(data: bytes) -> bytes:
    """The first chat message with a body in the corpus (standalone bytes)."""
    start = data.index(b"<message ")
    while True:
        end = data.index(b"</message>", start) + len(b"</message>")
        stanza = data[start:end]
        if b"<body>" in stanza:
            return stanza
        start = data.index(b"<message ", end)


def measure(n_stanzas: int, repeat: int) -> dict[str, Any]:
    data = make_stream(n_stanzas)
    expected = stanza_count(data)
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    engines = _engines()

    rows: dict[str, Callable[[], int]] = {}
    for label, eng in engines.items():
        rows[f"{label} framing"] = functools.partial(run_framing, eng, chunks)
        rows[f"{label} all tokens"] = functools.partial(run_all_tokens, eng, chunks)
    rows["pyexpat + handlers"] = lambda: run_pyexpat_handlers(chunks)
    rows["ET XMLPullParser"] = lambda: run_pull_parser(chunks)
    rows["libexpat floor"] = lambda: run_floor(chunks)
    rows["libexpat floor, no namespaces"] = lambda: run_floor(chunks, namespaces=False)

    times: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(repeat):
        for label, fn in rows.items():
            dt, n = _time(fn)
            if n >= 0 and n != expected:
                raise SystemExit(f"{label}: saw {n} stanzas, expected {expected}")
            times[label].append(dt)

    results: dict[str, Any] = {
        "stanzas": expected,
        "bytes": len(data),
        "chunk": CHUNK,
        "repeat": repeat,
        "python": sys.version.split()[0],
        "expat": expat.EXPAT_VERSION,
        "parse": {},
        "encode": {},
    }
    for label, ts in times.items():
        med = statistics.median(ts)
        results["parse"][label] = {
            "seconds": med,
            "stanzas_per_s": expected / med,
            "mb_per_s": len(data) / med / 1e6,
        }

    # encoding one typical message
    msg = typical_message(data)
    et_el = ET.fromstring(msg.replace(b"<message ", b"<message xmlns='jabber:client' ", 1))
    enc_rows: dict[str, Callable[[], object]] = {}
    for label, eng in engines.items():
        p = eng.StreamParser()
        evs = p.feed(data[: data.index(b">", data.index(b"<stream:stream")) + 1] + msg)
        el = evs[-1]
        assert type(el) is eng.Element
        enc_rows[f"{label} Element.encode"] = functools.partial(el.encode, "jabber:client")
        toks = list(el)
        enc = eng.Encoder(ns="jabber:client")

        def via_tokens(enc: Any = enc, toks: list[Any] = toks) -> bytes:
            enc.encode(toks)
            return enc.flush()  # type: ignore[no-any-return]

        enc_rows[f"{label} Encoder over tokens"] = via_tokens
    enc_rows["ET.tostring"] = lambda: ET.tostring(et_el)
    enc_times: dict[str, list[float]] = {k: [] for k in enc_rows}
    for _ in range(repeat):
        for label, enc_fn in enc_rows.items():
            enc_times[label].append(_ops_per_second(enc_fn))
    for label, ops in enc_times.items():
        results["encode"][label] = {"ops_per_s": statistics.median(ops), "stanza_bytes": len(msg)}

    # targets
    P, E = results["parse"], results["encode"]
    pull = P["ET XMLPullParser"]["stanzas_per_s"]
    floor = P["libexpat floor"]["stanzas_per_s"]
    tostring = E["ET.tostring"]["ops_per_s"]
    targets = []

    def target(name: str, value: float | None, need: float, unit: str) -> None:
        targets.append(
            {
                "target": name,
                "value": value,
                "need": need,
                "unit": unit,
                "pass": value is not None and value >= need,
            }
        )

    def rate(label: str) -> float | None:
        return P[label]["stanzas_per_s"] if label in P else None

    c_all, c_frame, p_all = rate("compiled all tokens"), rate("compiled framing"), rate("pure all tokens")
    target("compiled all tokens vs XMLPullParser", c_all / pull if c_all else None, 2.0, "x")
    target("compiled framing vs libexpat floor", c_frame / floor if c_frame else None, 0.8, "x")
    c_enc = E.get("compiled Element.encode", {}).get("ops_per_s")
    target("compiled encode vs ET.tostring", c_enc / tostring if c_enc else None, 3.0, "x")
    target("pure all tokens vs XMLPullParser (within 2x)", p_all / pull if p_all else None, 0.5, "x")
    results["targets"] = targets
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        f"# {results['stanzas']} stanzas, {results['bytes'] / 1e6:.1f} MB, "
        f"{results['bytes'] / results['stanzas']:.0f} B/stanza, {results['chunk']} B chunks, "
        f"median of {results['repeat']}; Python {results['python']}, {results['expat']}",
        "",
        f"{'parse':<32} {'stanzas/s':>12} {'MB/s':>8} {'vs pull':>8} {'vs floor':>9}",
    ]
    P = results["parse"]
    pull = P["ET XMLPullParser"]["stanzas_per_s"]
    floor = P["libexpat floor"]["stanzas_per_s"]
    for label, r in P.items():
        s = r["stanzas_per_s"]
        lines.append(f"{label:<32} {s:>12,.0f} {r['mb_per_s']:>8.1f} {s / pull:>7.2f}x {s / floor:>8.2f}x")
    lines += ["", f"{'encode one message':<32} {'ops/s':>12} {'vs ET':>8}"]
    E = results["encode"]
    ts = E["ET.tostring"]["ops_per_s"]
    for label, r in E.items():
        lines.append(f"{label:<32} {r['ops_per_s']:>12,.0f} {r['ops_per_s'] / ts:>7.2f}x")
    lines += ["", "targets"]
    for t in results["targets"]:
        mark = "PASS" if t["pass"] else "MISS"
        value = "n/a" if t["value"] is None else f"{t['value']:.2f}{t['unit']}"
        lines.append(f"  {mark}  {t['target']:<46} {value:>7}  (need >= {t['need']:.2f}{t['unit']})")
    lines.append(
        f"  note: libexpat alone (the floor) runs at {floor / pull:.2f}x XMLPullParser's stanzas/s: "
        "no parser built on it can read every token faster than that"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stanzas", type=int, default=50_000, help="stanzas in the stream (default 50000)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; medians are shown (default 5)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)
    if args.stanzas < 1 or args.repeat < 1:
        ap.error("--stanzas and --repeat must be positive")
    results = measure(args.stanzas, args.repeat)
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
