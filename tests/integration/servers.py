"""Throw-away Prosody and ejabberd instances, and the test PKI they serve.

Everything here runs on loopback only (127.0.0.1) and lives in a temporary
directory: configuration, data, logs and certificates. A server is started
as its Debian service user when the tests run as root (``setpriv``), with a
parent-death signal so that it cannot outlive the test process, and stopped
by its pid. Nothing here needs the library under test: the fixtures must
work before the session layer does.

The public names are :class:`Pki`, :class:`CertPair`, :class:`XMPPServer`,
:class:`ProsodyServer`, :class:`EjabberdServer`, :class:`ServerNotInstalled`,
:class:`ServerStartError`, :func:`free_ports`, :func:`stop_all`,
:func:`sweep_stale_directories` and :func:`websocket_key`.
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import datetime
import glob
import hashlib
import http.client
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertPair",
    "EjabberdServer",
    "Pki",
    "ProsodyServer",
    "ServerNotInstalled",
    "ServerStartError",
    "XMPPServer",
    "free_ports",
    "stop_all",
    "sweep_stale_directories",
    "websocket_key",
]

#: The XMPP domain every test server serves.
DOMAIN = "localhost"

#: Names the good server certificate is valid for. No wildcard: OpenSSL (and
#: so Python's ``ssl``) never lets ``*.localhost`` match anything, because a
#: wildcard needs at least two labels after it; each subdomain is listed.
SERVER_DNS_NAMES = (
    "localhost",
    "component.localhost",
    "balanced.localhost",
    "conference.localhost",
)
SERVER_IPS = ("127.0.0.1", "::1")

#: Users registered on every server before it is handed to a test.
DEFAULT_USERS = {"alice": "alicepass", "bob": "bobpass", "carol": "carolpass"}

#: How long a start may take before it fails, and how long a stop waits for
#: SIGTERM to work before it sends SIGKILL.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ServerNotInstalled(RuntimeError):
    """The server's program is not on this machine (install the Debian packages)."""


class ServerStartError(RuntimeError):
    """The server did not come up in time; the message carries its log tail."""


# ---------------------------------------------------------------------------
# PKI


@dataclasses.dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, as PEM files.

    ``cert_file`` holds the leaf certificate only, ``chain_file`` the leaf
    followed by the CA that signed it, ``key_file`` the unencrypted PKCS#8
    key and ``combined_file`` the chain followed by the key (the layout
    ejabberd's ``certfiles`` reads). ``names`` and ``ips`` are the subject
    alternative names.
    """

    cert_file: Path
    key_file: Path
    chain_file: Path
    combined_file: Path
    names: tuple[str, ...]
    ips: tuple[str, ...]


class Pki:
    """A generated test PKI written into one directory.

    It holds a CA that tests trust (``ca_file``), a server certificate for
    ``localhost`` and its listed subdomains and loopback addresses signed by
    it (``server``), a second CA that nobody trusts (``untrusted_ca_file``)
    with a ``localhost`` certificate signed by it (``untrusted_server``), and
    a certificate for the wrong host name ``wrong.example`` signed by the
    good CA (``wrong_host``). Keys are RSA 2048 and signatures SHA-256, so
    every TLS stack here accepts them and ``tls-server-end-point`` hashes
    with SHA-256. Certificates are valid from a day ago for 30 days and carry
    the key identifiers that strict verification (``VERIFY_X509_STRICT``)
    asks for.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        """Generate every key and certificate into ``directory`` (a new temporary one if None)."""
        self._own_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="xmpp-pki-") if directory is None else directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._own_dir:
            _mark_owned(self.directory)
        os.chmod(self.directory, 0o755)
        self._ca_key, self._ca_cert = self._make_ca("xmpp test CA")
        self.ca_file = self._write_cert("ca.pem", [self._ca_cert])
        self.ca_key_file = self._write_key("ca.key", self._ca_key)
        self._untrusted_key, self._untrusted_cert = self._make_ca("xmpp untrusted CA")
        self.untrusted_ca_file = self._write_cert("untrusted-ca.pem", [self._untrusted_cert])
        self.server = self.issue("server", SERVER_DNS_NAMES, SERVER_IPS)
        self.untrusted_server = self.issue("untrusted-server", SERVER_DNS_NAMES, SERVER_IPS, trusted=False)
        self.wrong_host = self.issue("wrong-host", ("wrong.example",), ())

    def client_context(self, *, ca_file: Path | None = None) -> ssl.SSLContext:
        """Return a client context that verifies peers against ``ca_file`` (the good CA by default)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file or self.ca_file))
        return ctx

    def server_context(self, pair: CertPair | None = None) -> ssl.SSLContext:
        """Return a server context presenting ``pair`` (the good server certificate by default)."""
        pair = pair or self.server
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pair.chain_file), str(pair.key_file))
        return ctx

    def issue(
        self,
        stem: str,
        names: tuple[str, ...] | list[str],
        ips: tuple[str, ...] | list[str] = (),
        *,
        trusted: bool = True,
    ) -> CertPair:
        """Issue a server certificate for ``names``/``ips`` signed by the good (or untrusted) CA.

        The files are written as ``<stem>.pem``, ``<stem>.key``,
        ``<stem>-chain.pem`` and ``<stem>-combined.pem`` in the PKI directory.
        """
        if trusted:
            ca_key, ca_cert = self._ca_key, self._ca_cert
        else:
            ca_key, ca_cert = self._untrusted_key, self._untrusted_cert
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else ips[0])])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_file = self._write_cert(f"{stem}.pem", [cert])
        key_file = self._write_key(f"{stem}.key", key)
        chain_file = self._write_cert(f"{stem}-chain.pem", [cert, ca_cert])
        combined = self.directory / f"{stem}-combined.pem"
        combined.write_bytes(chain_file.read_bytes() + key_file.read_bytes())
        os.chmod(combined, 0o644)
        return CertPair(cert_file, key_file, chain_file, combined, tuple(names), tuple(ips))

    def cleanup(self) -> None:
        """Remove the PKI directory if this object created it."""
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _make_ca(self, common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=60))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def _write_cert(self, name: str, certs: list[x509.Certificate]) -> Path:
        path = self.directory / name
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
        os.chmod(path, 0o644)
        return path

    def _write_key(self, name: str, key: rsa.RSAPrivateKey) -> Path:
        path = self.directory / name
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        # Test keys: readable so that a server running as its own user can
        # load them straight from here (servers copy them anyway).
        os.chmod(path, 0o644)
        return path


# ---------------------------------------------------------------------------
# Process helpers


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct TCP ports that were free on ``host`` a moment ago.

    All sockets are held open until every port is chosen, so the ports are
    distinct; another process can still take one before the server binds it,
    which :meth:`XMPPServer.start` survives by retrying with new ports.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _processes_in_group(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is the state, fields[2] the process group.
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """Map every live (non-zombie) pid to (parent pid, start time in ticks, state)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields: 0 state, 1 ppid, ..., 19 starttime (field 22 of stat(5)).
        if fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[19]), fields[0])
    return table


def _descendants(pid: int) -> dict[int, int]:
    """Map each live descendant of ``pid`` to its start time (to recognise it later)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found: dict[int, int] = {}
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop()
        if p in found:
            continue
        found[p] = table[p][1]
        stack.extend(children.get(p, []))
    return found


def _still_running(procs: dict[int, int]) -> list[int]:
    """The pids of ``procs`` (pid to start time) that are still the same live processes."""
    table = _proc_table()
    return [pid for pid, start in procs.items() if pid in table and table[pid][1] == start]


def _pids_named(comm: str) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == comm:
                    found.add(int(entry))
        except OSError:
            continue
    return found


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


_OWNER_FILE = ".xmpp-test-owner"


def _process_start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def _mark_owned(directory: Path) -> None:
    """Record in ``directory`` which process (pid and start time) made it."""
    pid = os.getpid()
    (directory / _OWNER_FILE).write_text(f"{pid} {_process_start_time(pid)}\n")


def sweep_stale_directories() -> list[Path]:
    """Remove temporary directories of ours whose owning process is gone; return them.

    A test process killed outright (SIGKILL) cannot clean up; its servers die
    with it (parent-death signal) but their directories stay. Only
    directories carrying our owner file are considered, and only when the
    process named there no longer exists, so concurrent test runs are safe.
    """
    removed = []
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "xmpp-*-*")):
        owner = Path(path) / _OWNER_FILE
        try:
            pid_text, start_text = owner.read_text().split()
        except (OSError, ValueError):
            continue
        if str(_process_start_time(int(pid_text))) != start_text:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(Path(path))
    return removed


_running: set[XMPPServer] = set()
_running_lock = threading.Lock()


def stop_all() -> None:
    """Stop every server this process started and has not stopped (run at exit)."""
    with _running_lock:
        servers = list(_running)
    for server in servers:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(stop_all)


# ---------------------------------------------------------------------------
# Servers


class XMPPServer:
    """One throw-away XMPP server on loopback; the base of the two real ones.

    Construct, then ``start()`` (or use it as a context manager). After a
    start these are set: ``host`` (``127.0.0.1``), ``domain``
    (``localhost``), ``c2s_port`` (STARTTLS required), ``direct_tls_port``
    (XEP-0368), ``component_port``, ``component_domain``,
    ``balanced_domain``, ``component_secret``, ``http_port``, ``ws_url``,
    ``https_port``, ``wss_url``, ``bosh_url``, ``muc_domain``, ``users`` (name to password), ``ca_file``,
    ``pid``, ``log_path`` and ``directory``. ``stop()`` ends the process by
    its pid and checks that nothing of it is left.
    """

    #: Short name used in test ids and messages.
    name: ClassVar[str] = "server"
    #: The service user the server runs as when the tests run as root.
    service_user: ClassVar[str] = ""
    #: SASL mechanisms offered after STARTTLS, without ``-PLUS`` variants.
    sasl_mechanisms: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        pki: Pki | None = None,
        *,
        users: dict[str, str] | None = None,
        keep_directory: bool | None = None,
    ) -> None:
        """Prepare (not start) a server serving ``pki``'s certificate with ``users`` registered.

        ``keep_directory`` keeps the temporary directory after ``stop()``
        (default: the environment variable ``XMPP_KEEP_SERVER_DIRS`` is set).
        """
        self._own_pki = pki is None
        self.pki = pki if pki is not None else Pki()
        self.host = "127.0.0.1"
        self.domain = DOMAIN
        self.component_domain = "component." + DOMAIN
        self.balanced_domain = "balanced." + DOMAIN
        self.muc_domain = "conference." + DOMAIN
        self.component_secret = secrets.token_hex(12)
        self.users: dict[str, str] = dict(DEFAULT_USERS if users is None else users)
        self.ca_file = self.pki.ca_file
        self.c2s_port = 0
        self.direct_tls_port = 0
        self.component_port = 0
        self.http_port = 0
        self.https_port = 0
        self.pid = 0
        self.start_seconds = 0.0
        if keep_directory is None:
            keep_directory = bool(os.environ.get("XMPP_KEEP_SERVER_DIRS"))
        self._keep_directory = keep_directory
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._output: Path | None = None
        self._epmd_before: set[int] = set()
        self.directory = Path()
        self.log_path = Path()

    # -- public face ---------------------------------------------------

    @property
    def ws_url(self) -> str:
        """The plain-HTTP WebSocket endpoint (RFC 7395) on loopback."""
        return f"ws://{self.host}:{self.http_port}{self._ws_path}"

    @property
    def wss_url(self) -> str:
        """The HTTPS WebSocket endpoint (certificate for ``localhost``: dial with that host name)."""
        return f"wss://localhost:{self.https_port}{self._ws_path}"

    @property
    def bosh_url(self) -> str:
        """The plain-HTTP BOSH endpoint on loopback."""
        return f"http://{self.host}:{self.http_port}{self._bosh_path}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def jid(self, user: str) -> str:
        """Return the bare JID of ``user`` on this server."""
        return f"{user}@{self.domain}"

    def start(self) -> None:
        """Start the server and return once every port accepts and the users exist.

        Raises :class:`ServerNotInstalled` if the program is missing and
        :class:`ServerStartError` (with the log tail) if it does not come up
        within ``START_TIMEOUT`` seconds. A port taken by someone else
        between choosing and binding it is retried with new ports.
        """
        if self.running:
            return
        self._check_installed()
        t0 = time.monotonic()
        attempts = 3
        for attempt in range(attempts):
            self._prepare_directory()
            try:
                self._launch()
                self._wait_ready(t0 + START_TIMEOUT)
                self._register_initial_users()
            except ServerStartError as exc:
                port_clash = "in use" in str(exc).lower() or "eaddrinuse" in str(exc).lower()
                self._terminate(keep=True)
                if port_clash and attempt + 1 < attempts and time.monotonic() < t0 + START_TIMEOUT:
                    continue
                raise
            except BaseException:
                self._terminate(keep=True)
                raise
            break
        self.start_seconds = time.monotonic() - t0

    def stop(self) -> None:
        """Stop the server by its pid (SIGTERM, SIGKILL after ``STOP_TIMEOUT``) and check nothing is left.

        Raises :class:`RuntimeError` if a process of the server outlived it
        (it is killed first). Calling it again, or before a start, does nothing.
        """
        self._terminate(keep=self._keep_directory)

    def register(self, user: str, password: str) -> None:
        """Create the account ``user`` with ``password`` on the running server; record it in ``users``."""
        self._register(user, password)
        self.users[user] = password

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` of the server log and of its captured output."""
        parts = [f"--- {self.log_path}", _tail(self.log_path, lines)]
        if self._output is not None:
            parts += [f"--- {self._output}", _tail(self._output, lines)]
        return "\n".join(parts)

    def __enter__(self) -> XMPPServer:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Show the kind, pid and ports."""
        return (
            f"<{type(self).__name__} pid={self.pid} c2s={self.c2s_port} tls={self.direct_tls_port} "
            f"component={self.component_port} http={self.http_port} https={self.https_port}>"
        )

    # -- for subclasses ------------------------------------------------

    _ws_path: ClassVar[str] = "/ws"
    _bosh_path: ClassVar[str] = "/bosh"
    _extra_ports: ClassVar[int] = 0

    def _programs(self) -> list[str]:
        raise NotImplementedError

    def _write_config(self, extra_ports: list[int]) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.directory), "LANG": "C.UTF-8"}

    def _register_initial_users(self) -> None:
        for user, password in self.users.items():
            self._register(user, password)

    def _register(self, user: str, password: str) -> None:
        raise NotImplementedError

    # -- machinery -----------------------------------------------------

    def _check_installed(self) -> None:
        missing = [p for p in self._programs() if shutil.which(p) is None and not os.path.exists(p)]
        if missing:
            raise ServerNotInstalled(
                f"{self.name}: {', '.join(missing)} not found; install the Debian packages "
                "(bash .ci/run system-deps)"
            )
        if self._as_service_user() and shutil.which("setpriv") is None:
            raise ServerNotInstalled(f"{self.name}: setpriv (util-linux) not found")

    def _as_service_user(self) -> bool:
        return os.geteuid() == 0

    def _service_ids(self) -> tuple[int, int]:
        entry = pwd.getpwnam(self.service_user)
        return entry.pw_uid, entry.pw_gid

    def _wrap(self, argv: list[str]) -> list[str]:
        """Prefix ``argv`` so that it runs as the service user and dies with us."""
        if self._as_service_user():
            return [
                "setpriv",
                "--reuid",
                self.service_user,
                "--regid",
                self.service_user,
                "--init-groups",
                "--pdeathsig",
                "TERM",
                "--",
                *argv,
            ]
        return ["setpriv", "--pdeathsig", "TERM", "--", *argv] if shutil.which("setpriv") else argv

    def _prepare_directory(self) -> None:
        if self.directory != Path() and self.directory.exists() and not self._keep_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = Path(tempfile.mkdtemp(prefix=f"xmpp-{self.name}-"))
        os.chmod(self.directory, 0o700)
        _mark_owned(self.directory)
        (self.directory / "certs").mkdir()
        for src, dst in (
            (self.pki.server.chain_file, "server-chain.pem"),
            (self.pki.server.key_file, "server.key"),
            (self.pki.server.combined_file, "server-combined.pem"),
            (self.pki.ca_file, "ca.pem"),
        ):
            shutil.copyfile(src, self.directory / "certs" / dst)
            os.chmod(self.directory / "certs" / dst, 0o600)
        ports = free_ports(5 + self._extra_ports)
        self.c2s_port, self.direct_tls_port, self.component_port, self.http_port, self.https_port = ports[:5]
        self._write_config(ports[5:])
        if self._as_service_user():
            uid, gid = self._service_ids()
            for root, dirs, files in os.walk(self.directory):
                os.chown(root, uid, gid)
                for n in files:
                    os.chown(os.path.join(root, n), uid, gid)

    def _run_tool(self, argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[bytes]:
        """Run a helper command as the service user inside the server directory."""
        return subprocess.run(
            self._wrap(argv),
            cwd=self.directory,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )

    def _launch(self) -> None:
        self._output = self.directory / "output.log"
        self._epmd_before = _pids_named("epmd")
        with open(self._output, "wb") as out:
            self._proc = subprocess.Popen(
                self._wrap(self._command()),
                cwd=self.directory,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        self._started_at = time.monotonic()
        with _running_lock:
            _running.add(self)

    def _wait_ready(self, deadline: float) -> None:
        pending = [self.c2s_port, self.direct_tls_port, self.component_port, self.http_port, self.https_port]
        while pending:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ServerStartError(
                    f"{self.name} exited with {self._proc.returncode} during start-up\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.name} did not accept on ports {pending} within {START_TIMEOUT:.0f} s\n"
                    + self.log_tail()
                )
            pending = [p for p in pending if not _port_open(self.host, p)]
            if pending:
                time.sleep(0.05)

    def _terminate(self, *, keep: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        leftovers: list[int] = []
        try:
            # Helpers that erl starts (erl_child_setup, inet_gethost) call
            # setsid, so the process group does not find them: note the
            # whole tree before the signal.
            tree = _descendants(proc.pid) if proc.poll() is None else {}
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT)
            # They exit once the server is gone; give them a bounded moment.
            deadline = time.monotonic() + STOP_TIMEOUT
            while True:
                leftovers = sorted(set(_still_running(tree)) | set(_processes_in_group(proc.pid)))
                if not leftovers or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            # An epmd daemon would leave the tree too; any that appeared
            # while we ran and belongs to the service user is ours.
            for pid in _pids_named("epmd") - self._epmd_before:
                if self._owned_by_service_user(pid):
                    leftovers.append(pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        finally:
            with _running_lock:
                _running.discard(self)
            if not keep and self.directory != Path():
                shutil.rmtree(self.directory, ignore_errors=True)
            if self._own_pki and not keep:
                self.pki.cleanup()
        if leftovers:
            raise RuntimeError(f"{self.name}: processes {leftovers} outlived the server and were killed")

    def _owned_by_service_user(self, pid: int) -> bool:
        if not self._as_service_user():
            try:
                return os.stat(f"/proc/{pid}").st_uid == os.geteuid()
            except OSError:
                return False
        try:
            return os.stat(f"/proc/{pid}").st_uid == self._service_ids()[0]
        except OSError:
            return False


def _lua(value: str) -> str:
    """Quote ``value`` as a Lua string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class ProsodyServer(XMPPServer):
    """A throw-away Prosody (0.12, Debian package) on loopback.

    Configuration: ``c2s_require_encryption``, ``authentication =
    "internal_plain"`` (so PLAIN, SCRAM-SHA-1 and SCRAM-SHA-256 are all
    offered), a direct TLS port, components ``component.localhost`` and
    ``balanced.localhost`` sharing one secret (Prosody accepts one connection
    per component domain), MUC on ``conference.localhost``, WebSocket at
    ``/xmpp-websocket`` and BOSH at ``/http-bind`` on plain HTTP (considered
    secure), stream management (mod_smacks), ping, disco, carbons, blocking
    (mod_blocklist), ad-hoc commands (mod_adhoc); no MAM,
    no offline storage, no s2s.
    """

    name = "prosody"
    service_user = "prosody"
    sasl_mechanisms = frozenset({"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"})
    _ws_path = "/xmpp-websocket"
    _bosh_path = "/http-bind"

    def _programs(self) -> list[str]:
        return ["prosody", "prosodyctl"]

    @property
    def config_path(self) -> Path:
        """The generated ``prosody.cfg.lua``."""
        return self.directory / "prosody.cfg.lua"

    def _write_config(self, extra_ports: list[int]) -> None:
        d = self.directory
        (d / "data").mkdir()
        self.log_path = d / "prosody.log"
        cert = str(d / "certs" / "server-chain.pem")
        key = str(d / "certs" / "server.key")
        config = f"""-- generated by tests/integration/servers.py
pidfile = {_lua(str(d / "prosody.pid"))}
data_path = {_lua(str(d / "data"))}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = {_lua(str(self.log_path))} }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s_port} }}
c2s_direct_tls_ports = {{ {self.direct_tls_port} }}
s2s_ports = {{ }}
component_ports = {{ {self.component_port} }}
component_interfaces = {{ "127.0.0.1" }}
http_ports = {{ {self.http_port} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ {self.https_port} }}
https_interfaces = {{ "127.0.0.1" }}
https_ssl = {{ certificate = {_lua(cert)}, key = {_lua(key)} }}
http_default_host = {_lua(self.domain)}
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
authentication = "internal_plain"
storage = "internal"
consider_websocket_secure = true
consider_bosh_secure = true
ssl = {{ certificate = {_lua(cert)}, key = {_lua(key)} }}
c2s_direct_tls_ssl = {{ certificate = {_lua(cert)}, key = {_lua(key)} }}
modules_enabled = {{
    "roster"; "saslauth"; "tls"; "disco"; "ping"; "carbons"; "smacks";
    "version"; "time"; "uptime"; "http"; "websocket"; "bosh";
    "blocklist"; "adhoc";
}}
modules_disabled = {{ "offline"; "s2s"; "s2s_auth_certs"; "s2s_bidi" }}
admins = {{ }}

VirtualHost {_lua(self.domain)}
    ssl = {{ certificate = {_lua(cert)}, key = {_lua(key)} }}

Component {_lua(self.component_domain)}
    component_secret = {_lua(self.component_secret)}

Component {_lua(self.balanced_domain)}
    component_secret = {_lua(self.component_secret)}

Component {_lua(self.muc_domain)} "muc"
"""
        self.config_path.write_text(config)

    def _command(self) -> list[str]:
        return ["prosody", "--config", str(self.config_path), "-F"]

    def _register_initial_users(self) -> None:
        # Each prosodyctl is a fresh Lua process; run them side by side.
        procs = [
            subprocess.Popen(
                self._wrap(["prosodyctl", "--config", str(self.config_path), "register", u, self.domain, p]),
                cwd=self.directory,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for u, p in self.users.items()
        ]
        failures = []
        for (user, _), proc in zip(self.users.items(), procs):
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            if proc.returncode != 0:
                failures.append(f"{user}: {out.decode(errors='replace').strip()}")
        if failures:
            raise ServerStartError(f"prosodyctl register failed: {'; '.join(failures)}\n{self.log_tail()}")

    def _register(self, user: str, password: str) -> None:
        res = self._run_tool(
            ["prosodyctl", "--config", str(self.config_path), "register", user, self.domain, password]
        )
        if res.returncode != 0:
            out = res.stdout.decode(errors="replace").strip()
            raise RuntimeError(f"prosodyctl register {user} failed: {out}")


def _ejabberd_lib_dir() -> str | None:
    """The directory whose ``ejabberd-*`` subdirectory holds ejabberd's ebin (ERL_LIBS)."""
    patterns = (
        "/usr/lib/*/ejabberd-*/ebin",  # Debian, Ubuntu
        "/usr/lib/ejabberd-*/ebin",
        "/usr/lib/erlang/lib/ejabberd-*/ebin",
    )
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if hits:
            return str(Path(hits[-1]).parent.parent)
    return None


class EjabberdServer(XMPPServer):
    """A throw-away ejabberd (23.01, Debian package) node on loopback.

    Started with ``erl`` directly (not ``ejabberdctl``): its own config,
    mnesia spool, logs and cookie in the temporary directory; Erlang
    distribution on a fixed loopback port without epmd (``-erl_epmd_port``,
    ``-start_epmd false``). Configuration: ``starttls_required``, a direct
    TLS listener, plain password storage (PLAIN and SCRAM-SHA-1/256/512 all
    offered; DIGEST-MD5 and X-OAUTH2 disabled), shapers off,
    ``max_fsm_queue`` raised to 1,000,000, no MAM, no offline storage, no
    s2s, stream management, MUC, carbons, blocking (mod_blocking with
    mod_privacy), ad-hoc commands (mod_adhoc), WebSocket at ``/ws``, BOSH at ``/bosh`` and
    the HTTP API at ``/api`` (loopback only; used to register users). The
    component listener serves ``component.localhost`` and
    ``balanced.localhost`` with ``global_routes: false``;
    ``balanced.localhost`` is spread over ``balanced_components``
    connections by ``domain_balancing`` (type ``balancing``, default
    ``random``). ``ctl()`` runs ejabberdctl commands, ``api()`` calls the
    HTTP API.
    """

    name = "ejabberd"
    service_user = "ejabberd"
    sasl_mechanisms = frozenset({"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"})
    _ws_path = "/ws"
    _bosh_path = "/bosh"
    _extra_ports = 1

    def __init__(
        self,
        pki: Pki | None = None,
        *,
        users: dict[str, str] | None = None,
        keep_directory: bool | None = None,
        balancing: str = "random",
        balanced_components: int = 2,
    ) -> None:
        """Prepare a node; ``balanced.localhost`` is spread over ``balanced_components`` connections.

        ``balancing`` is the ``domain_balancing`` type (``random``,
        ``source``, ``destination``, ``bare_source``, ``bare_destination``).
        ejabberd keeps ``balanced_components`` fixed slots for the domain and
        drops what it hashes to a slot that no connection holds, so exactly
        that many components should connect.
        """
        super().__init__(pki, users=users, keep_directory=keep_directory)
        if not 2 <= balanced_components <= 1000:
            raise ValueError("balanced_components must be between 2 and 1000")
        self.balancing = balancing
        self.balanced_components = balanced_components
        self.dist_port = 0
        self.cookie = secrets.token_hex(16)
        self.node = ""

    def _programs(self) -> list[str]:
        return ["erl"]

    def _check_installed(self) -> None:
        super()._check_installed()
        if _ejabberd_lib_dir() is None:
            raise ServerNotInstalled(
                "ejabberd: no ejabberd-*/ebin under /usr/lib; install the Debian package ejabberd"
            )

    @property
    def config_path(self) -> Path:
        """The generated ``ejabberd.yml``."""
        return self.directory / "ejabberd.yml"

    def _write_config(self, extra_ports: list[int]) -> None:
        d = self.directory
        self.dist_port = extra_ports[0]
        self.node = f"xmpptest{self.dist_port}@localhost"
        for sub in ("spool", "logs", "contrib"):
            (d / sub).mkdir()
        self.log_path = d / "logs" / "ejabberd.log"
        combined = json.dumps(str(d / "certs" / "server-combined.pem"))
        ca = json.dumps(str(d / "certs" / "ca.pem"))
        secret = json.dumps(self.component_secret)
        # YAML by hand: plain scalars become atoms in ejabberd's loader.
        config = f"""# generated by tests/integration/servers.py
hosts:
  - {self.domain}
loglevel: info
log_rotate_count: 0
certfiles:
  - {combined}
ca_file: {ca}
auth_method: internal
auth_password_format: plain
disable_sasl_mechanisms:
  - DIGEST-MD5
  - X-OAUTH2
max_fsm_queue: 1000000
s2s_access: nobody
listen:
  -
    port: {self.c2s_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
    shaper: none
    access: c2s
    max_fsm_queue: 1000000
  -
    port: {self.direct_tls_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    tls: true
    shaper: none
    access: c2s
    max_fsm_queue: 1000000
  -
    port: {self.component_port}
    ip: "127.0.0.1"
    module: ejabberd_service
    global_routes: false
    shaper: none
    max_fsm_queue: 1000000
    hosts:
      {self.component_domain}:
        password: {secret}
      {self.balanced_domain}:
        password: {secret}
  -
    port: {self.http_port}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /ws: ejabberd_http_ws
      /bosh: mod_bosh
      /api: mod_http_api
  -
    port: {self.https_port}
    ip: "127.0.0.1"
    module: ejabberd_http
    tls: true
    request_handlers:
      /ws: ejabberd_http_ws
      /bosh: mod_bosh
domain_balancing:
  {self.balanced_domain}:
    type: {self.balancing}
    component_number: {self.balanced_components}
acl:
  loopback:
    ip:
      - 127.0.0.0/8
      - ::1/128
access_rules:
  local:
    allow: all
  c2s:
    allow: all
  nobody:
    deny: all
shaper_rules:
  max_user_sessions: 10000
  c2s_shaper: none
  s2s_shaper: none
api_permissions:
  "loopback admin":
    from:
      - mod_http_api
    who:
      acl: loopback
    what: "*"
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_stream_mgmt: {{}}
  mod_carboncopy: {{}}
  mod_privacy: {{}}
  mod_blocking: {{}}
  mod_adhoc: {{}}
  mod_version: {{}}
  mod_bosh: {{}}
  mod_http_api: {{}}
  mod_muc:
    host: {self.muc_domain}
"""
        self.config_path.write_text(config)

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        d = self.directory
        env.update(
            {
                "EJABBERD_CONFIG_PATH": str(self.config_path),
                "EJABBERD_LOG_PATH": str(self.log_path),
                "CONTRIB_MODULES_PATH": str(d / "contrib"),
                "CONTRIB_MODULES_CONF_DIR": str(d / "contrib"),
                "ERL_CRASH_DUMP_BYTES": "0",
                "ERL_CRASH_DUMP": str(d / "logs" / "erl_crash.dump"),
                "ERL_LIBS": _ejabberd_lib_dir() or "",
                "ERL_EPMD_ADDRESS": "127.0.0.1",
            }
        )
        return env

    def _erl_base(self, node: str) -> list[str]:
        return [
            "erl",
            "-sname",
            node,
            "-setcookie",
            self.cookie,
            "-erl_epmd_port",
            str(self.dist_port),
            "-start_epmd",
            "false",
            "-kernel",
            "inet_dist_use_interface",
            "{127,0,0,1}",
            "+P",
            "250000",
            "-noinput",
        ]

    def _command(self) -> list[str]:
        return [
            *self._erl_base(self.node),
            "-mnesia",
            "dir",
            json.dumps(str(self.directory / "spool")),
            "-s",
            "ejabberd",
        ]

    def ctl(self, *args: str, timeout: float = 30.0) -> tuple[int, str]:
        """Run an ``ejabberdctl`` command against the node; return its exit status and output.

        It runs as a hidden Erlang node that does not listen (``-dist_listen
        false``) and reaches the server on its fixed distribution port.
        """
        node = f"ctl{secrets.token_hex(4)}@localhost"
        argv = [
            *self._erl_base(node),
            "-hidden",
            "-dist_listen",
            "false",
            "-s",
            "ejabberd_ctl",
            "-extra",
            self.node,
            *args,
        ]
        res = self._run_tool(argv, timeout=timeout)
        return res.returncode, res.stdout.decode(errors="replace")

    def api(self, command: str, arguments: dict[str, object], timeout: float = 10.0) -> object:
        """Call the ejabberd HTTP API ``command`` (``POST /api/<command>``) and return the decoded JSON."""
        conn = http.client.HTTPConnection(self.host, self.http_port, timeout=timeout)
        try:
            conn.request(
                "POST",
                f"/api/{command}",
                body=json.dumps(arguments).encode(),
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"ejabberd API {command} -> {resp.status}: {body.decode(errors='replace')}")
        return json.loads(body) if body else None

    def _register(self, user: str, password: str) -> None:
        self.api("register", {"user": user, "host": self.domain, "password": password})

    def _wait_ready(self, deadline: float) -> None:
        super()._wait_ready(deadline)
        # Listeners open before every module has settled; the API answering
        # is the sign that registration will work.
        while True:
            try:
                self.api("status", {}, timeout=2.0)
                return
            except (OSError, RuntimeError, http.client.HTTPException, ValueError) as exc:
                assert self._proc is not None
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise ServerStartError(f"ejabberd API not ready: {exc}\n{self.log_tail()}") from exc
                time.sleep(0.1)


def websocket_key() -> tuple[str, str]:
    """Return a random ``Sec-WebSocket-Key`` and the ``Sec-WebSocket-Accept`` a server must answer."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    accept = base64.b64encode(digest).decode()
    return key, accept
