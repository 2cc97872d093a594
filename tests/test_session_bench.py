"""The session benchmark, checked as an ordinary test: every row runs and prints.

``benchmarks/session_bench.py`` runs here with tiny sizes (in a subprocess,
as a user runs it) and its checks are tested directly: the corpus checksum
it compares the message handlers against, and that a handler which missed a
message stops the run.  No timing is asserted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

OURS = [
    "xmpp engine alone (bound)",
    "xmpp session -> ServeMux -> handler",
    "xmpp send(Message)",
    "xmpp send_message(Message, body)",
    "xmpp send_iq over client_server_pair",
]
SLIX = [
    "slixmpp XMLStream (bare core)",
    "slixmpp ClientXMPP",
    "slixmpp make_message().send()",
    "slixmpp Iq.send between two streams",
]
SIZES = ["--stanzas", "300", "--send", "200", "--iq", "120", "--inflight", "10", "--repeat", "1"]


def _has_slixmpp() -> bool:
    return importlib.util.find_spec("slixmpp") is not None


def _bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("session_bench", BENCH / "session_bench.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("XMPP_NO_EXTENSIONS", None)
    return subprocess.run(
        [sys.executable, str(BENCH / "session_bench.py"), *SIZES, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_table_prints_every_row() -> None:
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rows = OURS + (SLIX if _has_slixmpp() else [])
    for row in rows:
        assert f"  {row} " in out, f"row {row!r} missing from:\n{out}"
    assert "300 stanzas" in out
    # one mark per target in the rows, one in the summary
    assert out.count("PASS") + out.count("MISS") == 6


def test_json_counts_every_stanza() -> None:
    proc = _run("--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    bench = _bench()
    want = bench.expected_counts(bench.corpus.make_stream(300))
    assert res["stanzas"] == want["stanzas"] == 300
    assert res["messages"] == want["messages"] > 0
    receive = res["rows"]["receive"]
    # the receive rows counted every stanza of the corpus (the run stops otherwise)
    for label in OURS[:2] + (SLIX[:2] if _has_slixmpp() else []):
        assert receive[label]["count"] == 300
        assert receive[label]["per_s"] > 0
    assert res["rows"]["send"]["xmpp send_message(Message, body)"]["count"] == 200
    assert res["rows"]["iq"]["xmpp send_iq over client_server_pair"]["count"] == 120
    assert [t["group"] for t in res["targets"]] == ["receive", "send", "iq"]
    assert all(isinstance(t["pass"], bool) for t in res["targets"])
    assert (res["slixmpp"] is not None) == _has_slixmpp()


def test_without_slixmpp_rows() -> None:
    proc = _run("--no-slixmpp")
    assert proc.returncode == 0, proc.stderr
    for row in SLIX:
        assert row not in proc.stdout
    for row in OURS:
        assert row in proc.stdout


def test_expected_counts_of_a_small_stream() -> None:
    bench = _bench()
    data = (
        bench.corpus.HEADER
        + b"<message type='chat' from='a@b'><body>caf\xc3\xa9 &amp; tea</body><body>no</body></message>"
        + b"<message><thread>t</thread><x xmlns='urn:x'><body>nested</body></x></message>"
        + b"<presence from='c@d'><status>here</status></presence>"
        + b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    got = bench.expected_counts(data)
    # only the first <body/> of a message counts, in jabber:client, as a direct child
    assert got == {"stanzas": 4, "messages": 2, "chat": 1, "from": 1, "body_chars": len("café & tea")}


def test_a_handler_that_misses_a_message_stops_the_run() -> None:
    bench = _bench()
    seen = bench._Checksum()
    seen.messages, seen.chat, seen.from_, seen.body_chars = 2, 1, 1, 10
    want = {"stanzas": 4, "messages": 2, "chat": 1, "from": 1, "body_chars": 10}
    bench._check("row", seen, want)  # equal: no complaint
    seen.messages = 1
    with pytest.raises(SystemExit, match="the message handler saw"):
        bench._check("row", seen, want)


def test_receive_row_in_process() -> None:
    bench = _bench()
    stream = bench.corpus.make_stream(120)
    want = bench.expected_counts(stream)
    _header, chunks = bench._split(stream)
    dt, n = asyncio.run(bench.ours_receive(chunks, want))
    assert n == 120 and dt >= 0
