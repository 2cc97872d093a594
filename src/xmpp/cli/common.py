"""What every subcommand of ``python -m xmpp`` shares.

Exit codes (:data:`EXIT_CODES`), credentials (the password comes from the
environment, a file only its owner can read, or a prompt on a terminal --
never from the command line), TLS contexts, connecting a session from the
parsed options, and turning an exception into one readable line and an
exit code (:func:`classify`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import ssl
import stat
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "EXIT_AUTH",
    "EXIT_CODES",
    "EXIT_CONNECT",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CLIError",
    "add_connection_options",
    "classify",
    "connect",
    "get_password",
    "parse_jid",
    "read_password_file",
    "tls_context",
]

#: Success.
EXIT_OK = 0
#: The peer answered with an error, a ping failed, a benchmark lost stanzas.
EXIT_ERROR = 1
#: Bad usage: options, addresses, a password file others can read.
EXIT_USAGE = 2
#: The server refused the login (SASL failure).
EXIT_AUTH = 3
#: No connection: refused, unreachable, TLS or certificate failure, stream error.
EXIT_CONNECT = 4
#: Something did not finish within ``--timeout``.
EXIT_TIMEOUT = 5

#: Every exit code and what it means (shown by ``python -m xmpp --help``).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "ok"),
    (EXIT_ERROR, "error reply, ping failed, or stanzas lost (bench)"),
    (EXIT_USAGE, "usage: bad options, address, or a password file readable by others"),
    (EXIT_AUTH, "authentication failed"),
    (EXIT_CONNECT, "connection, TLS or stream failure"),
    (EXIT_TIMEOUT, "timeout"),
)

#: Environment variables the password is read from.
PASSWORD_ENV = "XMPP_PASSWORD"
PASSWORD2_ENV = "XMPP_PASSWORD2"
#: The environment variable the secret of ``bench --component`` is read from.
COMPONENT_SECRET_ENV = "XMPP_COMPONENT_SECRET"


class CLIError(Exception):
    """An error the command line reports as one line, with its exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        #: The process exit code this error ends with.
        self.code = code


def add_connection_options(parser: argparse.ArgumentParser, *, bench: bool = False) -> None:
    """Add the account and connection options to ``parser``.

    ``bench`` words the help for the benchmark, where they apply only with
    ``--server``.
    """
    g = parser.add_argument_group(
        "account and connection" + (" (with --server)" if bench else "")
    )
    g.add_argument(
        "--jid",
        default=None if bench else os.environ.get("XMPP_JID"),
        help="the account to log in as" + ("" if bench else " (default: $XMPP_JID)"),
    )
    g.add_argument(
        "--password-file",
        metavar="FILE",
        help=f"read the password from FILE (mode 600 or stricter); default: ${PASSWORD_ENV}",
    )
    if not bench:
        g.add_argument("--host", help="connect to HOST instead of looking up DNS SRV records")
        g.add_argument("--port", type=int, help="connect to PORT (default: from DNS, else 5222)")
    g.add_argument(
        "--direct-tls",
        action="store_true",
        help="TLS from the first byte (XEP-0368) instead of STARTTLS",
    )
    g.add_argument("--ca-file", metavar="PEM", help="trust the CA certificates in PEM only")
    g.add_argument(
        "--insecure",
        action="store_true",
        help="DO NOT verify the server's certificate (anyone on the path can read the stream)",
    )
    g.add_argument(
        "--sasl",
        metavar="MECHS",
        help="comma-separated SASL mechanisms to allow, preferred first (default: SCRAM, then PLAIN)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="bound of connecting and of each wait for an answer (default: 15)",
    )


def parse_jid(value: str, what: str = "address") -> Any:
    """Parse ``value`` as a JID, or raise a usage :class:`CLIError` naming ``what``."""
    from xmpp.jid import JID, JIDError

    try:
        return JID.parse(value)
    except JIDError as exc:
        raise CLIError(f"invalid {what} {value!r}: {exc}", EXIT_USAGE) from None


def read_password_file(path: str) -> str:
    """Return the password stored in the file ``path``.

    The file must be a regular file that neither its group nor others may
    access (mode ``600`` or stricter), as ssh requires of a private key;
    anything else is a usage :class:`CLIError`.  One trailing line break is
    removed; an empty password is refused.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CLIError(f"cannot open the password file {path}: {exc.strerror}", EXIT_USAGE) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CLIError(f"the password file {path} is not a regular file", EXIT_USAGE)
        if st.st_mode & 0o077:
            raise CLIError(
                f"the password file {path} is accessible to group or others "
                f"(mode {stat.S_IMODE(st.st_mode):03o}); run: chmod 600 {path}",
                EXIT_USAGE,
            )
        data = fh.read(64 * 1024)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"the password file {path} is not UTF-8", EXIT_USAGE) from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise CLIError(f"the password file {path} is empty", EXIT_USAGE)
    return text


def get_password(
    file: str | None,
    *,
    env: str = PASSWORD_ENV,
    who: str = "",
    prompt: bool = True,
) -> str:
    """The password: from ``file`` when given, else the environment variable
    ``env``, else (when ``prompt`` and stdin is a terminal) asked for without
    echo.  Never from the command line.  Raises a usage :class:`CLIError`
    when there is none."""
    if file:
        return read_password_file(file)
    value = os.environ.get(env)
    if value:
        return value
    if prompt and sys.stdin.isatty():
        try:
            value = getpass.getpass(f"password for {who or 'the account'}: ")
        except (EOFError, KeyboardInterrupt):
            value = ""
        if value:
            return value
    raise CLIError(
        f"no password{' for ' + who if who else ''}: set ${env} or use --password-file FILE",
        EXIT_USAGE,
    )


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client TLS context the options ask for (``None``: the library's
    default, verifying against the system's trust store).

    ``--insecure`` turns verification off and says so loudly on stderr;
    ``--ca-file`` trusts only the given CA certificates.
    """
    from xmpp import starttls

    if getattr(args, "insecure", False):
        if getattr(args, "ca_file", None):
            raise CLIError("--insecure and --ca-file contradict each other", EXIT_USAGE)
        sys.stderr.write(
            "WARNING: --insecure: the server's certificate is NOT verified; "
            "anyone on the path can read and change this stream\n"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", starttls.InsecureTLSWarning)
            return starttls.insecure_client_context()
    ca = getattr(args, "ca_file", None)
    if ca:
        try:
            return starttls.client_context(ca)
        except (OSError, ssl.SSLError) as exc:
            raise CLIError(f"cannot load the CA file {ca}: {exc}", EXIT_USAGE) from None
    return None


def mechanisms(args: argparse.Namespace) -> Sequence[str] | None:
    """The SASL mechanisms of ``--sasl`` (``None``: the library's default order)."""
    value = getattr(args, "sasl", None)
    if not value:
        return None
    names = [m.strip().upper() for m in value.split(",") if m.strip()]
    if not names:
        raise CLIError("--sasl needs at least one mechanism", EXIT_USAGE)
    return names


async def connect(
    args: argparse.Namespace,
    jid: Any,
    password: str,
    *,
    tee_in: Callable[[bytes], object] | None = None,
    tee_out: Callable[[bytes], object] | None = None,
    host: str | None = None,
    port: int | None = None,
    context: ssl.SSLContext | None = None,
) -> Any:
    """Log in as ``jid`` with the connection options of ``args`` and return
    the ``READY`` session (:func:`xmpp.client.dial_client_session`)."""
    from xmpp.client import dial_client_session

    ctx = context if context is not None else tls_context(args)
    return await dial_client_session(
        jid,
        password,
        tls_context=ctx,
        host=host if host is not None else getattr(args, "host", None),
        port=port if port is not None else getattr(args, "port", None),
        direct_tls=True if getattr(args, "direct_tls", False) else None,
        timeout=args.timeout,
        mechanisms=mechanisms(args),
        tee_in=tee_in,
        tee_out=tee_out,
    )


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code of ``exc`` and one line that says what went wrong."""
    from xmpp.dial import DialError
    from xmpp.jid import JIDError
    from xmpp.sasl import SASLError
    from xmpp.session import SessionClosedError
    from xmpp.stanza import StanzaError
    from xmpp.starttls import TLSNegotiationError
    from xmpp.stream import StreamError

    if isinstance(exc, CLIError):
        return exc.code, str(exc)
    if isinstance(exc, SASLError):
        return EXIT_AUTH, f"authentication failed: {exc}"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return EXIT_TIMEOUT, f"timeout: {exc or 'no answer in time'}"
    if isinstance(exc, StanzaError):
        return EXIT_ERROR, f"error reply: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return EXIT_CONNECT, f"TLS certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return EXIT_CONNECT, f"TLS failed: {exc}"
    if isinstance(exc, DialError):
        # The nested causes, one per line, joined into one line.
        return EXIT_CONNECT, "connection failed: " + "; ".join(
            part.strip() for part in str(exc).splitlines() if part.strip()
        )
    if isinstance(exc, TLSNegotiationError):
        return EXIT_CONNECT, f"STARTTLS failed: {exc}"
    if isinstance(exc, StreamError):
        return EXIT_CONNECT, f"the stream ended with an error: {exc}"
    if isinstance(exc, SessionClosedError):
        return EXIT_CONNECT, f"connection closed: {exc}"
    if isinstance(exc, OSError):
        return EXIT_CONNECT, f"connection failed: {exc.strerror or exc}"
    if isinstance(exc, JIDError):
        return EXIT_USAGE, f"invalid address: {exc}"
    return EXIT_ERROR, f"{type(exc).__name__}: {exc}"
