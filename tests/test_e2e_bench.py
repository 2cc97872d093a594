"""The end-to-end server benchmark (``benchmarks/e2e_server.py``) runs and delivers every message.

The script is run as users run it, in a subprocess, with a small message
count against each real server it supports; the test checks that every row
(raw client, this library, slixmpp) is printed in the table, that each
receiver counted every message, and that the JSON results say the same.
Rates are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "e2e_server.py"
ROWS = ("raw", "ours", "slixmpp")
MESSAGES = 300


@pytest.mark.parametrize("server", ["ejabberd", "prosody"])
def test_every_row_delivers_every_message(server: str, tmp_path: Path) -> None:
    out_json = tmp_path / "e2e.json"
    env = dict(os.environ)
    env.pop("XMPP_NO_EXTENSIONS", None)
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--server",
            server,
            "--messages",
            str(MESSAGES),
            "--size",
            "64",
            "--repeat",
            "1",
            "--timeout",
            "60",
            "--json-out",
            str(out_json),
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, report

    table = proc.stdout.splitlines()
    assert table[0].startswith(f"end-to-end through {server}: {MESSAGES:,} chat messages"), report
    for row in ROWS:
        lines = [line for line in table if line.split()[:1] == [row]]
        assert len(lines) == 1, report
        assert "ERROR" not in lines[0], report
        assert f"{MESSAGES:,}/{MESSAGES:,}" in lines[0], report
    assert not any("LOST" in line for line in table), report
    assert any(line.startswith("target: ours >= 90% of raw:") for line in table), report

    res = json.loads(out_json.read_text())
    assert res["server"] == server
    assert res["messages"] == MESSAGES
    assert res["config_problems"] == []
    assert list(res["rows"]) == list(ROWS)
    for row in ROWS:
        r = res["rows"][row]
        assert r["received"] == MESSAGES and r["lost"] == 0, (row, r)
        assert r["msgs_per_s"] is not None and r["msgs_per_s"] > 0, (row, r)
        assert r["sender_cpu_s"] >= 0 and r["receiver_cpu_s"] >= 0, (row, r)
    assert res["rows"]["raw"]["vs_raw"] == pytest.approx(1.0)
    assert isinstance(res["target"]["pass"], bool)


def test_bodies_have_the_asked_size_and_are_numbered() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import e2e_server
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    texts = e2e_server.bodies(12, 100)
    assert len(texts) == 12
    assert all(len(t) == 100 and t.isascii() for t in texts)
    assert [t.split()[0] for t in texts] == [f"#{i:06d}" for i in range(12)]
    assert len(set(texts)) == 12
