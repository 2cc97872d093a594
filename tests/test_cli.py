"""``python -m xmpp`` end to end: every subcommand runs in a subprocess.

The peer is :class:`xmpp.testing.Server`, started on 127.0.0.1 in the test's
own event loop; the command line runs as a child process awaited with
``asyncio.create_subprocess_exec`` (so the loop keeps serving meanwhile),
its run bounded by ``RUN_TIMEOUT`` (killed by its pid after that).  The
benchmark starts its own embedded server.  Nothing asserts a time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from xmpp.client import dial_client_session
from xmpp.mux import ServeMux
from xmpp.stanza import IQType, MessageType
from xmpp.stream import NS_CLIENT
from xmpp.testing import Server
from xmpp.xmlstream import Name

#: Seconds one command may run before it is killed and the test fails.
RUN_TIMEOUT = 90.0
USERS = {"alice": "alice-secret-pw", "bob": "bob-secret-pw"}
REPO = Path(__file__).resolve().parent.parent
#: Runs the command line with rich and matplotlib made unimportable.
WITHOUT_EXTRAS = (
    "import sys; sys.modules['rich'] = None; sys.modules['matplotlib'] = None; "
    "from xmpp.cli import main; sys.exit(main(sys.argv[1:]))"
)


class Ran:
    """What a finished command left: exit code, stdout, stderr."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"<exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}>"


async def cli(
    *args: str,
    password: str | None = None,
    stdin: str | None = None,
    code: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Ran:
    """Run ``python -m xmpp ARGS`` (or ``python -c CODE ARGS``), bounded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XMPP_")}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    if password is not None:
        env["XMPP_PASSWORD"] = password
    env.update(extra_env or {})
    argv = [sys.executable, *(code or ["-m", "xmpp"]), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else b""), RUN_TIMEOUT
        )
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{argv} did not finish within {RUN_TIMEOUT} s")
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """An embedded server with alice and bob, in the test's loop."""
    async with Server(dict(USERS), timeout=20.0) as s:
        yield s


def conn(server: Server, user: str = "alice") -> list[str]:
    """The options that connect to ``server`` as ``user``."""
    return [
        "--jid", f"{user}@localhost", "--host", server.host, "--port", str(server.port),
        "--ca-file", server.ca_file, "--timeout", "20",
    ]


class Inbox:
    """A session of bob's (resource ``inbox``) that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, str]] = []
        self.arrived = asyncio.Event()
        self.session: Any = None
        self.task: asyncio.Task[None] | None = None
        self.ping_delay = 0.0

    def on_message(self, msg: Any, el: Any, s: Any) -> None:
        body = el.find("body")
        self.messages.append((str(msg.from_), str(msg.type), body.text if body is not None else ""))
        self.arrived.set()

    async def on_ping(self, iq: Any, el: Any, s: Any) -> None:
        await asyncio.sleep(self.ping_delay)
        await s.send(iq.result())


@pytest.fixture
async def inbox(server: Server) -> AsyncIterator[Inbox]:
    """Bob logged in as ``bob@localhost/inbox``, serving."""
    box = Inbox()
    s = await dial_client_session(
        "bob@localhost/inbox", USERS["bob"], host=server.host, port=server.port,
        tls_context=server.client_context(), timeout=20.0,
    )
    mux = ServeMux(NS_CLIENT).message_func(None, None, box.on_message)
    mux.iq_func(IQType.GET, Name("urn:xmpp:ping", "ping"), box.on_ping)
    box.session = s
    box.task = asyncio.ensure_future(s.serve(mux))
    try:
        yield box
    finally:
        await s.close(timeout=2.0)
        done, pending = await asyncio.wait([box.task], timeout=5.0)
        for t in pending:
            t.cancel()


def one_line_error(r: Ran) -> str:
    """The stderr of a failed command: one line, no traceback."""
    assert "Traceback" not in r.err, r
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r
    return lines[0]


# ---------------------------------------------------------------------------
# help and usage


async def test_help_documents_exit_codes() -> None:
    r = await cli("--help")
    assert r.code == 0, r
    for code, text in (("3", "authentication failed"), ("4", "connection"), ("5", "timeout"), ("2", "usage")):
        assert f"  {code}  {text}" in r.out, r
    for cmd in ("bench", "send", "ping", "disco", "console"):
        assert cmd in r.out


async def test_no_command_is_usage() -> None:
    r = await cli()
    assert r.code == 2, r


async def test_there_is_no_password_option() -> None:
    r = await cli("ping", "--jid", "alice@localhost", "--password", "x")
    assert r.code == 2, r
    assert "unrecognized arguments" in r.err


# ---------------------------------------------------------------------------
# bench


async def test_bench_json_counts_everything() -> None:
    r = await cli("bench", "--messages", "300", "--iq", "120", "--inflight", "8", "--clients", "2",
                  "--size", "50", "--json")
    assert r.code == 0, r
    report = json.loads(r.out)  # stdout holds only the JSON
    assert report["server"]["kind"] == "embedded"
    assert report["engine"] in ("compiled", "pure")
    (res,) = report["results"]
    assert res["name"] == "xmpp" and res["ok"] is True
    assert res["messages_sent"] == 300 and res["messages_received"] == 300
    assert res["messages_lost"] == 0 and res["messages_damaged"] == 0
    assert res["iq_ok"] == 120 and res["iq_failed"] == 0
    assert res["stanzas_per_second"] > 0 and res["iq_per_second"] > 0
    assert 0 < res["iq_latency_ms"]["p50"] <= res["iq_latency_ms"]["p99"] <= res["iq_latency_ms"]["max"]
    assert res["cpu_seconds"] > 0
    assert res["tls"].startswith("TLSv1") and res["sasl"].startswith("SCRAM-")
    phases = {ph for _t, ph, _c in res["samples"]}
    assert {"messages", "iq"} <= phases
    assert max(c for _t, ph, c in res["samples"] if ph == "messages") == 300


async def test_bench_pings_the_other_client() -> None:
    r = await cli("bench", "--messages", "50", "--iq", "40", "--iq-to", "peer", "--json")
    assert r.code == 0, r
    (res,) = json.loads(r.out)["results"]
    assert res["iq_ok"] == 40 and res["iq_failed"] == 0


async def test_bench_compare_slixmpp_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "throughput.png"
    r = await cli("bench", "--messages", "200", "--iq", "50", "--compare", "slixmpp",
                  "--plot", str(png), "--json")
    assert r.code == 0, r
    results = json.loads(r.out)["results"]
    assert [x["name"] for x in results] == ["xmpp", "slixmpp"]
    for x in results:
        assert x["error"] is None, x
        assert x["messages_received"] == 200 and x["iq_ok"] == 50
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_bench_table() -> None:
    r = await cli("bench", "--messages", "100", "--iq", "20", "--compare", "slixmpp")
    assert r.code == 0, r
    for label in ("message stanzas/s", "MB/s", "IQ round trips/s", "IQ latency p50",
                  "IQ latency p99", "CPU seconds", "xmpp ", "slixmpp ", "100 of 100"):
        assert label in r.out, r


async def test_bench_without_the_extras(tmp_path: Path) -> None:
    code = ["-c", WITHOUT_EXTRAS]
    r = await cli("bench", "--messages", "100", "--iq", "20", code=code)
    assert r.code == 0, r
    assert "message stanzas/s" in r.out and "100 of 100" in r.out
    assert "xmpp: messages: 100/100" in r.err  # the plain progress line
    r = await cli("bench", "--messages", "10", "--plot", str(tmp_path / "p.png"), code=code)
    assert r.code == 2, r
    assert "xmpp[plot]" in one_line_error(r)
    assert not (tmp_path / "p.png").exists()


async def test_help_no_longer_lists_code_6() -> None:
    r = await cli("bench", "--help")
    assert r.code == 0, r
    assert "  6  " not in r.out and "not available" not in r.out
    assert "--component" in r.out and "--component-secret-file" in r.out


async def test_bench_component_json() -> None:
    r = await cli("bench", "--component", "--messages", "300", "--iq", "120", "--inflight", "8",
                  "--clients", "2", "--size", "50", "--json")
    assert r.code == 0, r
    report = json.loads(r.out)  # stdout holds only the JSON
    assert report["scenario"]["component"] == ["c0.component.localhost", "c1.component.localhost"]
    assert report["server"]["component_address"].startswith("127.0.0.1:")
    assert report["server"]["component_address"] != report["server"]["address"]
    (res,) = report["results"]
    assert res["name"] == "xmpp" and res["ok"] is True and res["error"] is None
    # Component to user, then user to component: every message counted, none damaged.
    for flood in (res, res["inbound"]):
        assert flood["messages_sent"] == 300 and flood["messages_received"] == 300
        assert flood["messages_lost"] == 0 and flood["messages_damaged"] == 0
        assert flood["stanzas_per_second"] > 0 and flood["megabytes_per_second"] > 0
        assert flood["message_bytes"] > 50
    assert res["iq_ok"] == 120 and res["iq_failed"] == 0
    assert 0 < res["iq_latency_ms"]["p50"] <= res["iq_latency_ms"]["p99"]
    assert res["tls"].startswith("TLSv1") and res["sasl"].startswith("SCRAM-")
    phases = {ph for _t, ph, _c in res["samples"]}
    assert {"messages", "inbound", "iq"} <= phases
    assert max(c for _t, ph, c in res["samples"] if ph == "inbound") == 300


async def test_bench_component_table_and_domain() -> None:
    r = await cli("bench", "--component", "gw.example", "--messages", "100", "--iq", "20",
                  "--iq-to", "peer")
    assert r.code == 0, r
    assert "component path" in r.out.splitlines()[0], r
    assert "component gw.example" in r.out
    assert "pings from the component to the user" in r.out
    for label in ("to user: delivered", "to component: delivered", "to user: stanzas/s",
                  "to component: MB/s", "IQ round trips/s", "IQ latency p99", "100 of 100", "20 of 20"):
        assert label in r.out, r


async def test_bench_component_compare_slixmpp() -> None:
    r = await cli("bench", "--component", "--messages", "200", "--iq", "50", "--compare", "slixmpp",
                  "--json")
    assert r.code == 0, r
    results = json.loads(r.out)["results"]
    assert [x["name"] for x in results] == ["xmpp", "slixmpp"]
    for x in results:
        assert x["error"] is None, x
        assert x["messages_received"] == 200 and x["inbound"]["messages_received"] == 200
        assert x["messages_damaged"] == 0 and x["inbound"]["messages_damaged"] == 0
        assert x["iq_ok"] == 50 and x["iq_failed"] == 0


async def test_bench_component_against_a_server(tmp_path: Path) -> None:
    secret = "component secret"
    async with Server(dict(USERS), components={"gw.localhost": secret}, timeout=20.0) as server:
        base = ["bench", "--server", f"{server.host}:{server.port}", "--component", "gw.localhost",
                "--component-port", str(server.component_port), "--jid", "alice@localhost",
                "--ca-file", server.ca_file, "--messages", "100", "--iq", "20", "--json"]
        r = await cli(*base, password=USERS["alice"], extra_env={"XMPP_COMPONENT_SECRET": secret})
        assert r.code == 0, r
        report = json.loads(r.out)
        assert report["server"]["kind"] == "external"
        assert report["server"]["component_address"] == f"{server.host}:{server.component_port}"
        (res,) = report["results"]
        assert res["messages_received"] == 100 and res["inbound"]["messages_received"] == 100
        assert res["iq_ok"] == 20
        # The secret from a file of mode 600; one others may read is refused.
        f = tmp_path / "secret"
        f.write_text(secret + "\n")
        f.chmod(0o600)
        r = await cli(*base, "--component-secret-file", str(f), password=USERS["alice"])
        assert r.code == 0, r
        f.chmod(0o644)
        r = await cli(*base, "--component-secret-file", str(f), password=USERS["alice"])
        assert r.code == 2 and "chmod 600" in one_line_error(r), r
        # A wrong secret: the server ends the stream (exit 4), in one line.
        r = await cli(*base, "--no-progress", password=USERS["alice"],
                      extra_env={"XMPP_COMPONENT_SECRET": "wrong"})
        assert r.code == 4, r
        assert "not-authorized" in one_line_error(r)
        # No secret at all, or no domain with --server: usage errors.
        r = await cli(*base, password=USERS["alice"])
        assert r.code == 2 and "XMPP_COMPONENT_SECRET" in one_line_error(r), r
        no_domain = [a if a != "gw.localhost" else "--no-progress" for a in base]
        r = await cli(*no_domain, password=USERS["alice"], extra_env={"XMPP_COMPONENT_SECRET": secret})
        assert r.code == 2 and "--component DOMAIN" in one_line_error(r), r


async def test_bench_against_a_server(server: Server) -> None:
    # The same scenario through --server (one account, two resources).
    r = await cli("bench", "--server", f"{server.host}:{server.port}", "--jid", "alice@localhost",
                  "--ca-file", server.ca_file, "--messages", "100", "--iq", "20", "--json",
                  password=USERS["alice"])
    assert r.code == 0, r
    report = json.loads(r.out)
    assert report["server"]["kind"] == "external"
    assert report["results"][0]["messages_received"] == 100


# ---------------------------------------------------------------------------
# send, ping, disco


async def test_send_argument(server: Server, inbox: Inbox) -> None:
    r = await cli("send", *conn(server), "bob@localhost/inbox", "wherefore art thou",
                  password=USERS["alice"])
    assert r.code == 0, r
    await asyncio.wait_for(inbox.arrived.wait(), 10)
    (frm, typ, body), = inbox.messages
    assert frm.startswith("alice@localhost/") and typ == "chat" and body == "wherefore art thou"


async def test_send_stdin(server: Server, inbox: Inbox) -> None:
    r = await cli("send", *conn(server), "--type", "normal", "bob@localhost/inbox",
                  password=USERS["alice"], stdin="line one\nline two\n")
    assert r.code == 0, r
    await asyncio.wait_for(inbox.arrived.wait(), 10)
    (_frm, typ, body), = inbox.messages
    assert typ == str(MessageType.NORMAL) and body == "line one\nline two"


async def test_send_bounced(server: Server) -> None:
    r = await cli("send", *conn(server), "bob@localhost/nobody", "hello?", password=USERS["alice"])
    assert r.code == 1, r
    assert "service-unavailable" in one_line_error(r)


async def test_ping_server(server: Server) -> None:
    r = await cli("ping", *conn(server), "--count", "2", "--interval", "0",
                  password=USERS["alice"])
    assert r.code == 0, r
    assert r.out.count("pong from localhost: time=") == 2, r


async def test_ping_client(server: Server, inbox: Inbox) -> None:
    r = await cli("ping", *conn(server), "bob@localhost/inbox", password=USERS["alice"])
    assert r.code == 0, r
    assert "pong from bob@localhost/inbox" in r.out


async def test_ping_error_reply(server: Server) -> None:
    r = await cli("ping", *conn(server), "bob@localhost/away", password=USERS["alice"])
    assert r.code == 1, r
    assert "service-unavailable" in r.out


async def test_ping_timeout(server: Server, inbox: Inbox) -> None:
    inbox.ping_delay = 6.0
    args = conn(server)
    args[args.index("--timeout") + 1] = "3"
    r = await cli("ping", *args, "bob@localhost/inbox", password=USERS["alice"])
    assert r.code == 5, r
    assert "no answer" in r.out


async def test_disco(server: Server) -> None:
    r = await cli("disco", *conn(server), password=USERS["alice"])
    assert r.code == 0, r
    assert "disco#info of localhost" in r.out
    assert "server/im" in r.out
    assert "  urn:xmpp:ping" in r.out and "  http://jabber.org/protocol/disco#info" in r.out
    r = await cli("disco", *conn(server), "--json", password=USERS["alice"])
    assert r.code == 0, r
    info = json.loads(r.out)
    assert {"category": "server", "type": "im", "name": "xmpp.testing.Server"} in info["identities"]
    assert "urn:xmpp:ping" in info["features"]


# ---------------------------------------------------------------------------
# console


async def test_console(server: Server) -> None:
    typed = (
        "<iq type='get' to='localhost' id='typed-1'>\n"
        "  <ping xmlns='urn:xmpp:ping'/></iq>\n"
        "<broken></tag>\n"
        "/quit\n"
    )
    r = await cli("console", *conn(server), "--sasl", "PLAIN", password=USERS["alice"], stdin=typed)
    assert r.code == 0, r
    out = r.out
    # What was typed went out, pretty-printed; the answer came in.
    assert '>> <iq type="get" to="localhost" id="typed-1">' in out, r
    assert '>>   <ping xmlns="urn:xmpp:ping"/>' in out, r
    answers = [line for line in out.splitlines() if line.startswith("<< <iq") and 'id="typed-1"' in line]
    assert answers and 'type="result"' in answers[0], r
    assert "not sent: not-well-formed" in out
    # Both directions of the negotiation are shown; SASL payloads are not.
    assert "<< <stream:stream" in out and ">> <stream:stream" in out
    assert '>> <auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">[redacted]</auth>' in out
    secret = base64.b64encode(b"\0alice\0" + USERS["alice"].encode()).decode()
    assert secret not in out and USERS["alice"] not in out and USERS["alice"] not in r.err
    assert out.rstrip().endswith("<< </stream:stream>"), r


async def test_console_scram_redacted(server: Server) -> None:
    r = await cli("console", *conn(server), password=USERS["alice"], stdin="/quit\n")
    assert r.code == 0, r
    sasl_lines = [line for line in r.out.splitlines() if "xmpp-sasl" in line and ("<auth" in line or "<response" in line)]
    assert sasl_lines and all("[redacted]" in line for line in sasl_lines), r
    assert all("<< <challenge" not in line or "[redacted]" in line for line in r.out.splitlines())


# ---------------------------------------------------------------------------
# exit codes of failures


async def test_wrong_password(server: Server) -> None:
    r = await cli("ping", *conn(server), password="not-the-password")
    assert r.code == 3, r
    assert "authentication failed" in one_line_error(r)


async def test_unreachable_port(server: Server) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the command runs: nobody listens
    args = conn(server)
    args[args.index("--port") + 1] = str(port)
    r = await cli("ping", *args, password=USERS["alice"])
    assert r.code == 4, r
    assert "connection failed" in one_line_error(r)


async def test_untrusted_certificate(server: Server) -> None:
    args = conn(server)
    i = args.index("--ca-file")
    del args[i : i + 2]  # the system trust store does not know the test CA
    r = await cli("ping", *args, password=USERS["alice"])
    assert r.code == 4, r
    assert "certificate" in one_line_error(r)


async def test_password_file(server: Server, tmp_path: Path) -> None:
    pw = tmp_path / "password"
    pw.write_text(USERS["alice"] + "\n")
    pw.chmod(0o644)
    r = await cli("ping", *conn(server), "--password-file", str(pw))
    assert r.code == 2, r
    assert "chmod 600" in one_line_error(r)
    pw.chmod(0o600)
    r = await cli("ping", *conn(server), "--password-file", str(pw))
    assert r.code == 0, r


async def test_no_password(server: Server) -> None:
    r = await cli("ping", *conn(server))
    assert r.code == 2, r
    assert "XMPP_PASSWORD" in one_line_error(r)


async def test_debug_shows_the_traceback(server: Server) -> None:
    r = await cli("ping", *conn(server), "--debug", password="not-the-password")
    assert r.code != 0
    assert "Traceback" in r.err and "SASLError" in r.err
