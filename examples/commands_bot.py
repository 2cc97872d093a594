"""A bot offering an ad-hoc command (XEP-0050) with a data form (XEP-0004).

Run it against any XMPP server::

    XMPP_PASSWORD=secret python examples/commands_bot.py --jid bot@example.org/cmd

or against a local test server (``xmpp.testing.Server``) with its CA::

    XMPP_PASSWORD=secret python examples/commands_bot.py --jid bot@localhost/cmd \\
        --host 127.0.0.1 --port 5222 --ca-file ca.pem

It offers one command, ``greet`` ("Greet me"), in two steps: the first
answer is a form asking for a name (required) and a greeting style (a
list with three options); completing it with the filled-in form returns a
note with the greeting.  A form that does not validate is answered with
``bad-request`` naming what is wrong.  The command is listed in disco
(disco#items at the node ``http://jabber.org/protocol/commands``), so any
client with ad-hoc command support (Gajim, Psi, Conversations,
slixmpp's ``xep_0050``, :func:`xmpp.commands.execute`) can run it.  It
prints ``online as <full JID>`` once it is ready and stops on Ctrl-C,
SIGTERM or when the server closes the stream.  The password comes from
``XMPP_PASSWORD`` so that it never shows in the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys

from xmpp import commands, disco
from xmpp.client import dial_client_session
from xmpp.commands import Action, Note, Request, Response, Status
from xmpp.forms import Field, FieldType, Form, FormError, FormType, Option
from xmpp.mux import ServeMux
from xmpp.stanza import Condition, ErrorType, Presence, StanzaError
from xmpp.stream import NS_CLIENT

#: The node of the command this bot offers.
NODE = "greet"
#: How each greeting style greets.
STYLES = {"plain": "Hello, {}.", "cheerful": "Hi there, {}!", "formal": "Good day to you, {}."}

GREETING_FORM = Form(
    FormType.FORM,
    title="Greet me",
    instructions=["Tell me your name and how you would like to be greeted."],
    fields=[
        Field("FORM_TYPE", FieldType.HIDDEN, values=["urn:example:greet"]),
        Field("name", FieldType.TEXT_SINGLE, label="Your name", required=True),
        Field(
            "style",
            FieldType.LIST_SINGLE,
            label="Style",
            values=["plain"],
            options=[Option(k, k.capitalize()) for k in STYLES],
        ),
    ],
)


def greet(req: Request) -> Response:
    """The ``greet`` command: ask with a form, then answer with a greeting note."""
    if req.action is Action.EXECUTE:  # the first step: later ones arrive as their stage's action
        return Response(Status.EXECUTING, GREETING_FORM, (Action.COMPLETE,), Action.COMPLETE)
    if req.form is None:
        raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, "complete the command with the form")
    try:
        filled = GREETING_FORM.check_submission(req.form)
    except FormError as exc:
        raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, str(exc)) from None
    style = filled.get("style") or "plain"
    return Response(notes=[Note(STYLES[style].format(filled.get("name")))])


def make_mux(ns: str = NS_CLIENT) -> ServeMux:
    """The bot's mux: the command handler and disco listing it."""
    handler = commands.Handler()
    handler.register(NODE, "Greet me", greet)
    return ServeMux(
        ns,
        commands.handle(handler),
        disco.handle(
            identities=[disco.Identity("client", "bot", "commands bot")],
            items={commands.NS: handler.disco_items},
            nodes=handler.disco_nodes(),
        ),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description="Offer an ad-hoc command with a data form.")
    p.add_argument("--jid", required=True, help="the bot's address, such as bot@example.org/cmd")
    p.add_argument("--host", help="connect to this host instead of looking up DNS SRV records")
    p.add_argument("--port", type=int, help="connect to this port (default 5222 with --host)")
    p.add_argument("--ca-file", help="trust the CA certificates in this PEM file instead of the system's")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed for logging in")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, password: str) -> None:
    """Log in, go online and answer commands until the stream ends or we are told to stop."""
    ctx = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    session = await dial_client_session(
        args.jid, password, host=args.host, port=args.port, tls_context=ctx, timeout=args.timeout
    )
    async with session:
        serving = asyncio.ensure_future(session.serve(make_mux(session.stanza_ns)))
        await session.send_presence(Presence())
        print(f"online as {session.local_addr}", flush=True)
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
        await asyncio.wait([serving, stop], return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()


def main(argv: list[str] | None = None) -> int:
    """Run the bot; the exit status is 0 on a clean stop, 1 on an error."""
    args = parse_args(argv)
    password = os.environ.get("XMPP_PASSWORD")
    if not password:
        print("set XMPP_PASSWORD to the bot's password", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args, password))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # report, do not dump a traceback on the user
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
