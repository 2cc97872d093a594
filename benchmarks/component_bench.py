"""Component (XEP-0114) throughput through ejabberd: ours beside slixmpp and a raw component.

One run starts a throw-away ejabberd on 127.0.0.1 from the integration
fixtures (``tests/integration/servers.py``: shapers off, ``max_fsm_queue``
raised, no MAM) and measures two directions, each with three component
rows:

- ``out``: a component floods ``--messages`` chat messages to a user
  through the server.  The user is the same for every row, the raw client
  of ``benchmarks/e2e_server.py`` (STARTTLS, PLAIN, bind in literal bytes,
  counting ``</message>``), so that only the component differs.
- ``in``: that raw user floods messages (pre-serialized) to an address at
  the component's domain; the component counts them.

The component rows:

- ``raw``: the handshake and the messages in literal bytes; outgoing
  messages are serialized (``from`` included) before the clock starts,
  incoming ones are counted by ``</message>``.  The ceiling for any
  component library.
- ``ours``: :func:`xmpp.component.dial_session`; sending is
  ``send_message(Message(to, chat), <body>)`` per message with no ``from``
  (the component session puts it in), receiving is a
  :class:`xmpp.mux.ServeMux` message handler counting.
- ``slixmpp``: ``slixmpp.ComponentXMPP``; ``send_message(mto, mbody,
  mfrom)`` per message, ``message`` events counted.

Every end runs in its own process (the workers of
``benchmarks/e2e_server.py``, with the component clients defined here
added), before the clock starts each has finished its handshake or login
and had a ping answered by the server, and the rate is messages per second
from the sender's first send to the receiver's last message.  ``--repeat
K`` runs the rows K times round-robin and shows medians; the ratio to raw
is the median of the ratios within each round.  Target: ours reaches at
least 90% of raw in both directions (PASS/MISS).

Run: ``python benchmarks/component_bench.py [--messages N] [--size BYTES]
[--rows raw,ours,slixmpp] [--directions out,in] [--repeat K] [--json]``.
Everything stays on loopback; every process started here is stopped by its
pid.  The exit status is 1 when a row failed or lost messages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import platform
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import e2e_server as e2e  # noqa: E402  (the sibling benchmark: its raw client and workers)

ROWS = ("raw", "ours", "slixmpp")
DIRECTIONS = ("out", "in")
TARGET = 0.90
USERS = {"sender": "senderpass", "receiver": "receiverpass"}
NS_COMPONENT = "jabber:component:accept"
_HEADER_ID = re.compile(rb"<stream:stream[^>]*?\sid=['\"]([^'\"]+)['\"][^>]*>")
_HANDSHAKE = re.compile(rb"<handshake\s*/>|<handshake>\s*</handshake>|</stream:error>")
_READY = re.compile(rb"<iq[^>]*id=['\"]" + e2e.READY_ID.encode() + rb"['\"][^>]*?(/>|>.*?</iq>)", re.S)


def _component_addr(args: argparse.Namespace) -> str:
    """The address at the component's domain that users write to and the component writes from."""
    return f"bench@{args.user}"


# ---------------------------------------------------------------------------
# Component clients (the interface of e2e_server's clients: connect, prepare,
# send, receive, close).  For components ``--user`` is the component domain
# and ``--password`` its secret.


class RawComponent(e2e.RawClient):
    """The ``raw`` component: handshake and stanzas in literal bytes."""

    async def connect(self) -> str:
        """Handshake, then have a ping answered by the server; return the component's address."""
        import hashlib

        a = self.args
        p = self.proto
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_connection(lambda: p, a.host, a.port)
        t.write(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
            b"xmlns:stream='http://etherx.jabber.org/streams' to='" + a.user.encode() + b"'>"
        )
        sid = (await p.until(_HEADER_ID)).group(1).decode()
        digest = hashlib.sha1((sid + a.password).encode()).hexdigest()
        t.write(b"<handshake>" + digest.encode() + b"</handshake>")
        if b"error" in (await p.until(_HANDSHAKE)).group(0):
            raise ConnectionError("the server refused the handshake")
        t.write(
            b"<iq type='get' id='" + e2e.READY_ID.encode() + b"' from='" + a.user.encode()
            + b"' to='" + a.domain.encode() + b"'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        await p.until(_READY)
        return _component_addr(a)

    def prepare(self, to: str, texts: Sequence[str]) -> None:
        """Serialize every message, ``from`` included, before the clock starts."""
        to_b = to.encode()
        frm = _component_addr(self.args).encode()
        self.blob = b"".join(
            b"<message to='" + to_b + b"' from='" + frm + b"' id='r" + str(i).encode()
            + b"' type='chat'><body>" + text.encode() + b"</body></message>"
            for i, text in enumerate(texts)
        )


class OursComponent(e2e.OursClient):
    """The ``ours`` component: :func:`xmpp.component.dial_session`."""

    async def connect(self) -> str:
        """Handshake, serve, have a ping answered by the server; return the component's address."""
        from xmpp.component import dial_session
        from xmpp.jid import JID
        from xmpp.mux import ServeMux
        from xmpp.stanza import IQ, IQType
        from xmpp.xmlstream import Name, StartElement

        a = self.args
        s = self.session = await dial_session(a.user, a.password, a.host, a.port, timeout=e2e.CONNECT_TIMEOUT)
        mux = ServeMux(NS_COMPONENT).message_func(None, None, self._on_message)
        self.serving = asyncio.ensure_future(s.serve(mux))
        await asyncio.sleep(0)
        ping = StartElement(Name(e2e.PING_NS, "ping"))
        await s.send_iq(IQ(to=JID.parse(a.domain), type=IQType.GET), (ping, ping.end()), timeout=30)
        return _component_addr(a)

    async def send(self) -> None:
        """``send_message(Message(to, chat), <body>text</body>)`` per text; ``from`` added by the session."""
        from xmpp.stanza import Message, MessageType
        from xmpp.xmlstream import CharData, Name, StartElement

        body = StartElement(Name(NS_COMPONENT, "body"))
        end = body.end()
        to = self.to
        chat = MessageType.CHAT
        send_message = self.session.send_message
        for text in self.texts:
            await send_message(Message(to=to, type=chat), (body, CharData(text), end))
        await self.session.drain()


class SlixComponent(e2e.SlixClient):
    """The ``slixmpp`` component: ``slixmpp.ComponentXMPP``."""

    async def connect(self) -> str:
        """Handshake, have a ping answered by the server; return the component's address."""
        import slixmpp

        a = self.args
        loop = asyncio.get_running_loop()
        x = self.xmpp = slixmpp.ComponentXMPP(a.user, a.password, a.host, a.port)
        x.register_plugin("xep_0199")
        started: asyncio.Future[None] = loop.create_future()
        x.add_event_handler("session_start", lambda _e: started.done() or started.set_result(None))
        x.add_event_handler("message", self._on_message)
        x.connect()
        await asyncio.wait_for(started, e2e.CONNECT_TIMEOUT)
        await x["xep_0199"].ping(jid=a.domain, ifrom=a.user, timeout=30)
        return _component_addr(a)

    async def send(self) -> None:
        """``send_message(mto, mbody, mtype='chat', mfrom)`` per text, yielding every 100."""
        send_message = self.xmpp.send_message
        to = self.to
        frm = _component_addr(self.args)
        for i, text in enumerate(self.texts):
            send_message(mto=to, mbody=text, mtype="chat", mfrom=frm)
            if i % 100 == 99:
                await asyncio.sleep(0)


COMPONENTS = {"raw": RawComponent, "ours": OursComponent, "slixmpp": SlixComponent}


# ---------------------------------------------------------------------------
# The parent


async def _spawn(kind: str, role: str, server: Any, opts: argparse.Namespace, to: str = "") -> e2e._Worker:
    """Start one end: ``kind`` is ``user`` (the raw c2s client) or a component row."""
    if kind == "user":
        worker, port, user, password = "user", server.c2s_port, role, server.users[role]
    else:
        worker, port = f"component-{kind}", server.component_port
        user, password = server.component_domain, server.component_secret
    argv = [
        sys.executable, os.path.abspath(__file__),
        "--worker", worker, "--role", role,
        "--host", server.host, "--port", str(port), "--domain", server.domain,
        "--user", user, "--password", password, "--ca-file", str(server.ca_file),
        "--messages", str(opts.messages), "--size", str(opts.size), "--timeout", str(opts.timeout),
        "--to", to,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=1 << 20,
    )
    return e2e._Worker(proc, f"{kind} {role}")


async def run_row(
    row: str, direction: str, server: Any, opts: argparse.Namespace, workers: list[e2e._Worker]
) -> dict[str, Any]:
    """One row of one direction: start both ends, send, count; return its figures."""
    recv_kind, send_kind = ("user", row) if direction == "out" else (row, "user")
    recv = await _spawn(recv_kind, "receiver", server, opts)
    workers.append(recv)
    sender: e2e._Worker | None = None
    try:
        ready = await recv.event("ready", e2e.CONNECT_TIMEOUT + 10)
        sender = await _spawn(send_kind, "sender", server, opts, to=ready["jid"])
        workers.append(sender)
        await sender.event("ready", e2e.CONNECT_TIMEOUT + 10)
        cpu0 = e2e._server_cpu(server.pid)
        recv.tell("go")
        sender.tell("go")
        done = await recv.event("done", opts.timeout + 30)
        server_cpu = e2e._server_cpu(server.pid) - cpu0
        sent = await sender.event("sent", opts.timeout + 30)
        sender.tell("stop")
        stopped = await sender.event("stopped", 30)
        recv.tell("stop")
    finally:
        if sender is not None:
            await sender.finish()
        await recv.finish()
    n = opts.messages
    count = int(done["count"])
    ok = count >= n
    elapsed = float(done["t_last"]) - float(sent["t_first"]) if ok else 0.0
    comp_cpu = float(stopped["cpu"]) if direction == "out" else float(done["cpu"])
    return {
        "received": count,
        "lost": max(n - count, 0),
        "seconds": elapsed if ok else None,
        "msgs_per_s": n / elapsed if ok and elapsed > 0 else None,
        "component_cpu_s": comp_cpu,
        "server_cpu_s": server_cpu,
    }


async def run_all(opts: argparse.Namespace) -> dict[str, Any]:
    """Start ejabberd, run every row of every direction ``--repeat`` times; return the results."""
    sys.path.insert(0, str(REPO / "tests"))
    servers: Any = importlib.import_module("integration.servers")
    from xmpp import xmlstream

    server = servers.EjabberdServer(users=dict(USERS))
    workers: list[e2e._Worker] = []
    keys = [(d, r) for d in opts.directions for r in opts.rows]
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in keys}
    errors: dict[tuple[str, str], str] = {}
    try:
        server.start()
        for _ in range(opts.repeat):
            for key in keys:
                if key in errors:
                    continue
                try:
                    rounds[key].append(await run_row(key[1], key[0], server, opts, workers))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    errors[key] = str(exc)
    finally:
        for w in workers:
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.proc.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(w.proc.wait(), 5)
        server.stop()
    out: dict[str, dict[str, Any]] = {d: {} for d in opts.directions}
    for d, r in keys:
        rs = rounds[(d, r)]
        if (d, r) in errors or not rs:
            out[d][r] = {"error": errors.get((d, r), "no result")}
            continue
        med = {k: e2e._median([x[k] for x in rs]) for k in ("msgs_per_s", "seconds", "component_cpu_s", "server_cpu_s")}
        med["received"] = min(x["received"] for x in rs)
        med["lost"] = max(x["lost"] for x in rs)
        med["rounds"] = rs
        out[d][r] = med
    target: dict[str, Any] = {}
    for d in opts.directions:
        raw_rounds = out[d].get("raw", {}).get("rounds", [])
        for r, res in out[d].items():
            ratios: list[float | None] = []
            for mine, raw in zip(res.get("rounds", []), raw_rounds):
                a, b = mine["msgs_per_s"], raw["msgs_per_s"]
                ratios.append(a / b if a and b else None)
            res["vs_raw"] = e2e._median(ratios)
        ours = out[d].get("ours", {}).get("vs_raw")
        target[d] = {"ours_vs_raw": ours, "pass": bool(ours is not None and ours >= TARGET)}
    return {
        "server": "ejabberd",
        "messages": opts.messages,
        "body_bytes": opts.size,
        "repeat": opts.repeat,
        "compiled": xmlstream.COMPILED,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "directions": out,
        "target": {"ratio": TARGET, **target},
    }


def render(res: dict[str, Any]) -> str:
    """The results as a table."""
    n = res["messages"]
    lines = [
        f"components through ejabberd: {n:,} chat messages per row, {res['body_bytes']}-byte bodies, "
        f"{'median of ' + str(res['repeat']) if res['repeat'] > 1 else 'one round'}; "
        f"engine {'compiled' if res['compiled'] else 'pure'}, Python {res['python']}, {res['cpus']} CPUs",
    ]
    titles = {"out": "out: component -> server -> user", "in": "in: user -> server -> component"}
    head = f"{'row':<9} {'msgs/s':>9} {'vs raw':>7} {'received':>15} {'wall s':>7} {'comp CPU s':>10} {'comp µs/msg':>11} {'server CPU s':>12}"
    for d, rows in res["directions"].items():
        lines += ["", titles[d], head, "-" * len(head)]
        for row, r in rows.items():
            if "error" in r:
                lines.append(f"{row:<9} ERROR: {r['error']}")
                continue
            rate = f"{r['msgs_per_s']:9,.0f}" if r["msgs_per_s"] else f"{'-':>9}"
            ratio = f"{r['vs_raw'] * 100:6.0f}%" if r["vs_raw"] else f"{'-':>7}"
            recv = f"{r['received']:,}/{n:,}"
            wall = f"{r['seconds']:7.2f}" if r["seconds"] else f"{'-':>7}"
            lines.append(
                f"{row:<9} {rate} {ratio} {recv:>15} {wall} {r['component_cpu_s']:10.2f} "
                f"{r['component_cpu_s'] / n * 1e6:11.1f} {r['server_cpu_s']:12.2f}"
            )
            if r["lost"]:
                lines.append(f"{'':<9} LOST {r['lost']:,} messages")
        t = res["target"].get(d, {})
        if "ours" in rows and "raw" in rows:
            got = f"{t['ours_vs_raw'] * 100:.0f}%" if t.get("ours_vs_raw") else "no rate"
            lines.append(f"target: ours >= {res['target']['ratio'] * 100:.0f}% of raw: {got} {'PASS' if t.get('pass') else 'MISS'}")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20_000, help="messages per row (default 20000)")
    ap.add_argument("--size", type=int, default=100, help="body bytes per message (default 100)")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows (default raw,ours,slixmpp)")
    ap.add_argument("--directions", default=",".join(DIRECTIONS), help="out, in or both (default out,in)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are shown (default 3)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a row may take to deliver")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--json-out", default="", help="also write the JSON results to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--role", choices=("sender", "receiver"), help=argparse.SUPPRESS)
    for name in ("--host", "--domain", "--user", "--password", "--ca-file", "--to", "--profile-out"):
        ap.add_argument(name, default="", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.messages < 1 or args.size < 8 or args.repeat < 1 or args.timeout <= 0:
        ap.error("--messages and --repeat must be at least 1, --size at least 8, --timeout positive")
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    args.directions = [d.strip() for d in args.directions.split(",") if d.strip()]
    if any(r not in ROWS for r in args.rows) or any(d not in DIRECTIONS for d in args.directions):
        ap.error(f"rows are {', '.join(ROWS)}; directions are {', '.join(DIRECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one end of one row)."""
    args = _parse(argv)
    if args.worker:
        # The e2e worker loop, with the user client and the component clients.
        e2e.CLIENTS.update({"user": e2e.RawClient, **{f"component-{k}": v for k, v in COMPONENTS.items()}})
        asyncio.run(e2e.worker(args))
        return 0

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        res = asyncio.run(run_all(args))
    except KeyboardInterrupt:
        print("interrupted; the server and the workers were stopped", file=sys.stderr)
        return 130
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2) if args.json else render(res))
    failed = any("error" in r or r["lost"] for rows in res["directions"].values() for r in rows.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
