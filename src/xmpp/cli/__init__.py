"""``python -m xmpp``: the benchmark, and everyday tools over real sessions.

Subcommands:

* ``bench`` -- end-to-end throughput and IQ latency through the embedded
  server (or a real one), optionally beside slixmpp (:mod:`xmpp.cli.bench`);
* ``send JID [MESSAGE]``, ``ping JID``, ``disco JID`` (:mod:`xmpp.cli.tools`);
* ``console`` -- an interactive XML console (:mod:`xmpp.cli.console`).

:func:`main` parses the arguments, runs the subcommand and returns the exit
code (:data:`xmpp.cli.common.EXIT_CODES`).  Errors are one line on stderr,
not a traceback, unless ``--debug``.  Passwords never come from the command
line: ``$XMPP_PASSWORD``, ``--password-file`` (mode 600) or a prompt.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from xmpp.cli.common import EXIT_CODES, EXIT_USAGE, CLIError, add_connection_options, classify

__all__ = ["build_parser", "main"]

_EPILOG = """\
exit codes:
{codes}

The password is read from $XMPP_PASSWORD or --password-file FILE (which only
its owner may read: chmod 600), or asked for on a terminal; there is no
--password option.  Run "python -m xmpp COMMAND --help" for a command's options.
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors exit with :data:`EXIT_USAGE`.

    Abbreviated options are refused: ``--password`` must never be taken
    for ``--password-file``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the usage and the error on stderr; exit with code 2."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _codes() -> str:
    return "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m xmpp`` and its subcommands."""
    from xmpp.cli import bench

    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="python -m xmpp",
        description="XMPP from the command line: a benchmark and everyday tools.",
        epilog=_EPILOG.format(codes=_codes()),
        formatter_class=fmt,
    )
    p.add_argument("--debug", action="store_true", help="log everything and show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def common_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="log everything and show tracebacks")

    b = sub.add_parser(
        "bench",
        help="end-to-end throughput and IQ latency (embedded server, or --server)",
        description=(
            "How fast this library moves stanzas, end to end.\n\n"
            "Without options: the embedded xmpp.testing.Server on 127.0.0.1, one\n"
            "sender/receiver pair logged in with STARTTLS, SCRAM and bind, 50,000\n"
            "messages, then 20,000 pipelined pings; a summary table on stdout.\n\n"
            "--component benches the component path (XEP-0114): a component on the\n"
            "server's component port floods messages to a logged-in user, the user\n"
            "floods messages to the component, then the component pings."
        ),
        epilog="exit codes:\n" + _codes(),
        formatter_class=fmt,
    )
    bench.add_arguments(b)
    common_flags(b)

    s = sub.add_parser("send", help="send a chat message (text from the argument or stdin)",
                       description="Log in as --jid and send one message to JID.  Without MESSAGE "
                       "the text is read from stdin.  Waits until the server has handled it; "
                       "an error bounced by the server ends with exit code 1.",
                       epilog="exit codes:\n" + _codes(), formatter_class=fmt)
    s.add_argument("to", metavar="JID", help="the recipient")
    s.add_argument("message", metavar="MESSAGE", nargs="?", help="the text (default: read stdin)")
    s.add_argument("--type", choices=("chat", "normal", "headline"), default="chat",
                   help="the message type (default chat)")
    s.add_argument("--subject", help="a subject line")
    add_connection_options(s)
    common_flags(s)

    pg = sub.add_parser("ping", help="XEP-0199 ping; prints the round trip time",
                        description="Log in as --jid and ping JID (a server, a client's full JID, "
                        "a service).  Prints each round trip; exit code 1 when a ping got an error "
                        "reply, 5 when one timed out.",
                        epilog="exit codes:\n" + _codes(), formatter_class=fmt)
    pg.add_argument("to", metavar="JID", nargs="?", help="whom to ping (default: your server)")
    pg.add_argument("-c", "--count", type=int, default=1, help="pings to send (default 1)")
    pg.add_argument("-i", "--interval", type=float, default=1.0, metavar="SECONDS",
                    help="seconds between pings (default 1)")
    add_connection_options(pg)
    common_flags(pg)

    d = sub.add_parser("disco", help="XEP-0030 disco#info: identities and features",
                       description="Log in as --jid and ask JID (default: your server) for its "
                       "service discovery information; prints its identities and features.",
                       epilog="exit codes:\n" + _codes(), formatter_class=fmt)
    d.add_argument("to", metavar="JID", nargs="?", help="whom to ask (default: your server)")
    d.add_argument("--node", help="the disco node to query")
    d.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_connection_options(d)
    common_flags(d)

    c = sub.add_parser("console", help="interactive XML console over a real session",
                       description="Log in as --jid and show every byte of the stream as "
                       "pretty-printed XML (<< in, >> out; SASL payloads redacted).  Type a "
                       "stanza (over several lines if you like: it is sent once it is "
                       "well-formed); /quit or end of input closes the session.",
                       epilog="exit codes:\n" + _codes(), formatter_class=fmt)
    c.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour in and out (default: on a terminal, unless $NO_COLOR)")
    c.add_argument("--raw", action="store_true", help="show the bytes as they are, not pretty-printed")
    add_connection_options(c)
    common_flags(c)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m xmpp`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "debug"):
        args.debug = False
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.debug:
        # The library reports what goes wrong through exceptions; the CLI
        # turns those into one line.  Its own warnings (insecure TLS) are
        # printed by the CLI itself.
        logging.getLogger("xmpp").setLevel(logging.CRITICAL)
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        if args.command == "bench":
            from xmpp.cli import bench

            return bench.run(args)
        if args.command == "console":
            from xmpp.cli import console

            return console.run(args)
        from xmpp.cli import tools

        return tools.run(args)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except SystemExit:
        raise
    except BaseException as exc:
        if args.debug:
            raise
        code, line = classify(exc)
        sys.stderr.write(f"xmpp {args.command}: {line}\n")
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
