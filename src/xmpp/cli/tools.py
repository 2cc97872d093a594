"""Everyday tools: ``send``, ``ping`` and ``disco`` of ``python -m xmpp``.

Each logs in as ``--jid`` (:func:`xmpp.cli.common.connect`), does one
thing, and closes the session (bounded) before it returns.

* ``send JID [MESSAGE]`` sends one message (the text from the argument, or
  all of stdin), then pings its own server: the server handles stanzas in
  order, so once the pong is in, a bounce of the message would have arrived
  too; a bounce ends with exit code 1.
* ``ping [JID]`` sends XEP-0199 pings (default: to the own server) and
  prints each round trip.
* ``disco [JID]`` asks for XEP-0030 ``disco#info`` and prints identities
  and features.  (There is no disco module yet; the query is built here.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from xmpp.cli import common
from xmpp.cli.common import EXIT_ERROR, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, CLIError

__all__ = ["NS_DISCO_INFO", "NS_PING", "disco", "ping", "run", "send", "session"]

NS_PING = "urn:xmpp:ping"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def account(args: argparse.Namespace) -> tuple[Any, str, ssl.SSLContext | None]:
    """The JID, password and TLS context of ``--jid`` and the options."""
    if not args.jid:
        raise CLIError("which account? give --jid JID (or set $XMPP_JID)", EXIT_USAGE)
    jid = common.parse_jid(args.jid, "--jid")
    if not jid.local:
        raise CLIError(f"--jid {args.jid!r} has no user name (user@domain)", EXIT_USAGE)
    if args.port is not None and not 0 < args.port < 65536:
        raise CLIError(f"--port {args.port}: no such port", EXIT_USAGE)
    if args.timeout <= 0:
        raise CLIError("--timeout must be positive", EXIT_USAGE)
    password = common.get_password(args.password_file, who=str(jid.bare()))
    return jid, password, common.tls_context(args)


@contextlib.asynccontextmanager
async def session(
    args: argparse.Namespace,
    jid: Any,
    password: str,
    context: ssl.SSLContext | None,
    handler: Any = None,
    **tees: Any,
) -> AsyncIterator[Any]:
    """A logged-in session serving ``handler``; closed (bounded) on leaving,
    its serve task finished.  A serve that fails while the block runs is
    raised when the block ends."""
    s = await common.connect(args, jid, password, context=context, **tees)
    task = asyncio.ensure_future(s.serve(handler))
    await asyncio.sleep(0)  # serve must be running before send_iq
    try:
        yield s
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(s.close(timeout=min(args.timeout, 5.0)), args.timeout + 1.0)
        if not task.done():
            _done, pending = await asyncio.wait([task], timeout=2.0)
            for t in pending:
                t.cancel()
            await asyncio.wait([task], timeout=2.0)
        if task.done() and not task.cancelled():
            task.exception()  # a stream that ended badly after our work: nothing to add


def _ping_payload() -> tuple[Any, Any]:
    from xmpp.xmlstream import Name, StartElement

    ping = StartElement(Name(NS_PING, "ping"))
    return ping, ping.end()


async def send(args: argparse.Namespace, jid: Any, password: str, ctx: ssl.SSLContext | None, text: str) -> int:
    """Send one message to ``args.to``; exit code 1 when the server bounces it."""
    from xmpp.jid import JID
    from xmpp.mux import ServeMux
    from xmpp.stanza import IQ, IQType, Message, MessageType, StanzaError, new_id
    from xmpp.stream import NS_CLIENT
    from xmpp.xmlstream import CharData, Name, StartElement

    to = common.parse_jid(args.to, "recipient")
    msg_id = new_id()
    bounced: list[StanzaError] = []

    def on_error(msg: Any, el: Any, s: Any) -> None:
        if msg.id == msg_id:
            err = StanzaError.from_stanza(el)
            bounced.append(err if err is not None else StanzaError("cancel", "undefined-condition"))

    mux = ServeMux(NS_CLIENT).message_func(MessageType.ERROR, None, on_error)
    payload: list[Any] = []
    if args.subject:
        subj = StartElement(Name(NS_CLIENT, "subject"))
        payload += [subj, CharData(args.subject), subj.end()]
    body = StartElement(Name(NS_CLIENT, "body"))
    payload += [body, CharData(text), body.end()]
    async with session(args, jid, password, ctx, mux) as s:
        await s.send_message(Message(to=to, id=msg_id, type=MessageType(args.type)), payload)
        await s.send_iq(IQ(to=JID.parse(jid.domain), type=IQType.GET), _ping_payload(), timeout=args.timeout)
        await asyncio.sleep(0)  # a bounce in the same read as the pong is handled first
    if bounced:
        raise bounced[0]
    return EXIT_OK


async def ping(args: argparse.Namespace, jid: Any, password: str, ctx: ssl.SSLContext | None) -> int:
    """Ping ``args.to`` (default: the own server) ``--count`` times."""
    from xmpp.jid import JID
    from xmpp.stanza import IQ, IQType, StanzaError

    to = common.parse_jid(args.to, "address") if args.to else JID.parse(jid.domain)
    if args.count < 1:
        raise CLIError("--count must be at least 1", EXIT_USAGE)
    code = EXIT_OK
    ok = 0
    async with session(args, jid, password, ctx) as s:
        for i in range(args.count):
            if i:
                await asyncio.sleep(max(0.0, args.interval))
            t0 = time.perf_counter()
            try:
                await s.send_iq(IQ(to=to, type=IQType.GET), _ping_payload(), timeout=args.timeout)
            except StanzaError as exc:
                code = max(code, EXIT_ERROR) if code != EXIT_TIMEOUT else code
                sys.stdout.write(f"error from {to}: {exc}\n")
            except TimeoutError:
                code = EXIT_TIMEOUT
                sys.stdout.write(f"no answer from {to} within {args.timeout:g} s\n")
            else:
                ok += 1
                sys.stdout.write(f"pong from {to}: time={(time.perf_counter() - t0) * 1000:.2f} ms\n")
            sys.stdout.flush()
    if args.count > 1:
        sys.stdout.write(f"{args.count} pings, {ok} answered\n")
    if code != EXIT_OK:
        sys.stderr.write(f"xmpp ping: {args.count - ok} of {args.count} pings failed\n")
    return code


async def disco(args: argparse.Namespace, jid: Any, password: str, ctx: ssl.SSLContext | None) -> int:
    """Ask ``args.to`` (default: the own server) for disco#info and print it."""
    from xmpp.jid import JID
    from xmpp.stanza import IQ, IQType
    from xmpp.xmlstream import Attr, Name, StartElement

    to = common.parse_jid(args.to, "address") if args.to else JID.parse(jid.domain)
    attrs = [Attr(Name("", "node"), args.node)] if args.node else []
    query = StartElement(Name(NS_DISCO_INFO, "query"), attrs)
    async with session(args, jid, password, ctx) as s:
        reply = await s.send_iq(IQ(to=to, type=IQType.GET), (query, query.end()), timeout=args.timeout)
    q = reply.find("query", NS_DISCO_INFO)
    identities: list[dict[str, str]] = []
    features: list[str] = []
    forms = 0
    if q is not None:
        for c in q.children():
            if c.name == Name(NS_DISCO_INFO, "identity"):
                identities.append({
                    k: v for k in ("category", "type", "name", "lang")
                    if (v := (c.get("lang", None, "http://www.w3.org/XML/1998/namespace") if k == "lang" else c.get(k)))
                })
            elif c.name == Name(NS_DISCO_INFO, "feature") and c.get("var"):
                features.append(c.get("var") or "")
            elif c.name.local == "x":
                forms += 1
    if args.json:
        out = {"jid": str(to), "node": args.node, "identities": identities, "features": features}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return EXIT_OK
    lines = [f"disco#info of {to}" + (f" (node {args.node})" if args.node else "")]
    lines.append("identities:" if identities else "identities: none")
    for ident in identities:
        name = f"  {ident['name']!r}" if ident.get("name") else ""
        lang = f" [{ident['lang']}]" if ident.get("lang") else ""
        lines.append(f"  {ident.get('category', '?')}/{ident.get('type', '?')}{name}{lang}")
    lines.append("features:" if features else "features: none")
    lines += [f"  {f}" for f in sorted(features)]
    if forms:
        lines.append(f"extended information: {forms} data form(s)")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _read_text(args: argparse.Namespace) -> str:
    text: str | None = args.message
    if text is None:
        if sys.stdin.isatty():
            sys.stderr.write("type the message, end with Ctrl-D:\n")
        text = sys.stdin.read()
        if text.endswith("\n"):
            text = text[:-1]
    if not text.strip():
        raise CLIError("nothing to send: the message is empty", EXIT_USAGE)
    return text


def run(args: argparse.Namespace) -> int:
    """Run ``send``, ``ping`` or ``disco`` with parsed ``args``; return the exit code."""
    jid, password, ctx = account(args)
    if args.command == "send":
        common.parse_jid(args.to, "recipient")
        text = _read_text(args)
        return asyncio.run(send(args, jid, password, ctx, text))
    if args.command == "ping":
        return asyncio.run(ping(args, jid, password, ctx))
    if args.command == "disco":
        return asyncio.run(disco(args, jid, password, ctx))
    raise CLIError(f"unknown command {args.command!r}", EXIT_USAGE)
