"""An external component (XEP-0114) that answers disco, offers an ad-hoc command and echoes messages.

Run it against a server's component port (Prosody's ``component_ports``,
ejabberd's ``ejabberd_service`` listener)::

    XMPP_COMPONENT_SECRET=secret python examples/component.py \\
        --domain echo.example.org --host 127.0.0.1 --port 5347

It connects with :func:`xmpp.component.dial_session` (the handshake: SHA-1
of the stream id and the secret), then serves the stream with a
:class:`xmpp.mux.ServeMux` in the component namespace: disco#info queries
to the domain or any address at it are answered by :mod:`xmpp.disco` (an
identity ``component/generic``, the features of the handlers; disco#items
of the commands node lists the commands), the ad-hoc command ``reverse``
(XEP-0050: a one-field form, then the text reversed in a note) is offered,
and every message with a body is sent back to its sender from the address it
was sent to.  Replies need no ``from`` of their own: the component session
puts the domain in where a stanza has none.

It prints one line, ``connected as <domain>``, once the handshake is done,
and stops on Ctrl-C, SIGTERM or when the server closes the stream.  The
secret is read from ``XMPP_COMPONENT_SECRET`` so that it never shows in
the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from xmpp import commands, disco
from xmpp.commands import Action, Note, Request, Response, Status
from xmpp.component import dial_session
from xmpp.forms import Field, FieldType, Form, FormError, FormType
from xmpp.mux import ServeMux, message_func
from xmpp.session import Session
from xmpp.stanza import Condition, ErrorType, Message, MessageType, StanzaError
from xmpp.stream import NS_COMPONENT
from xmpp.xmlstream import Element, Name

BODY = Name(NS_COMPONENT, "body")


async def echo(msg: Message, element: Element, session: Session) -> None:
    """Send the body of ``msg`` back to its sender, from the address it was sent to."""
    body = element.find("body", NS_COMPONENT)
    if body is None or msg.from_ is None or msg.type is MessageType.ERROR:
        return
    reply = Message(to=msg.from_, from_=msg.to, type=msg.type)
    await session.send_message(reply, body)


#: The node of the ad-hoc command this component offers.
REVERSE = "reverse"
REVERSE_FORM = Form(
    FormType.FORM,
    title="Reverse a text",
    fields=[Field("text", FieldType.TEXT_SINGLE, label="Text", required=True)],
)


def reverse(req: Request) -> Response:
    """The ``reverse`` command: ask for a text with a form, answer it reversed."""
    if req.action is Action.EXECUTE:
        return Response(Status.EXECUTING, REVERSE_FORM, (Action.COMPLETE,), Action.COMPLETE)
    if req.form is None:
        raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, "complete the command with the form")
    try:
        filled = REVERSE_FORM.check_submission(req.form)
    except FormError as exc:
        raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, str(exc)) from None
    return Response(notes=[Note(str(filled.get("text"))[::-1])])


def mux() -> ServeMux:
    """The component's handlers: disco, the ad-hoc command and the echo."""
    cmds = commands.Handler()
    cmds.register(REVERSE, "Reverse a text", reverse)
    return ServeMux(
        NS_COMPONENT,
        message_func(None, BODY, echo),
        commands.handle(cmds),
        disco.handle(
            identities=[disco.Identity("component", "generic", "Echo component")],
            items={commands.NS: cmds.disco_items},
            nodes=cmds.disco_nodes(),
        ),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description="An echoing XEP-0114 component.")
    p.add_argument("--domain", required=True, help="the component's domain, such as echo.example.org")
    p.add_argument("--host", default="127.0.0.1", help="the server's host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5347, help="the server's component port (default 5347)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed for the handshake")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, secret: str) -> None:
    """Connect, serve until the stream ends or we are told to stop."""
    session = await dial_session(args.domain, secret, args.host, args.port, timeout=args.timeout)
    async with session:
        serving = asyncio.ensure_future(session.serve(mux()))
        print(f"connected as {session.local_addr}", flush=True)
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
        await asyncio.wait([serving, stop], return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()  # the server ended the stream: raise its error, if any
    with contextlib.suppress(Exception):
        await asyncio.wait_for(serving, 5)


def main(argv: list[str] | None = None) -> int:
    """The command line entry point: returns the process exit status."""
    args = parse_args(argv)
    secret = os.environ.get("XMPP_COMPONENT_SECRET")
    if not secret:
        print("set XMPP_COMPONENT_SECRET to the component's secret", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args, secret))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        print(f"component: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
