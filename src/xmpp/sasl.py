"""SASL mechanisms and TLS channel binding, without any I/O (RFC 6120 section 6).

This module is the mechanism layer of XMPP authentication.  It knows nothing
of streams, XML or sockets: a mechanism takes the bytes of the peer's last
SASL message and gives the bytes of the next one (h11 style).  The stream
feature that carries them in ``<auth/>``, ``<challenge/>``, ``<response/>``,
``<success/>`` and ``<failure/>`` elements (base64 on the wire) is built on
top of it.

Mechanisms:

* ``PLAIN`` (RFC 4616), with an optional authorization identity.  It sends
  the password itself, so :func:`select_mechanism` and
  :func:`server_mechanisms` only ever use it on a TLS-protected stream.
* ``SCRAM-SHA-1``, ``SCRAM-SHA-256`` and ``SCRAM-SHA-512`` (RFC 5802,
  RFC 7677), and their ``-PLUS`` variants, which bind the authentication to
  the TLS channel it runs on (RFC 5056) so that a man in the middle who
  terminates TLS with another certificate is detected.

Client side: :func:`select_mechanism` picks a mechanism from what the server
offered, :func:`client_mechanism` builds it, and the caller moves its
:class:`ClientMechanism` with :meth:`~ClientMechanism.initial`,
:meth:`~ClientMechanism.step` and :meth:`~ClientMechanism.finish`.

Server side: :func:`server_mechanisms` lists what to advertise,
:func:`server_mechanism` builds the one the client chose, and the caller
awaits :meth:`ServerMechanism.step` with each client message.  Secrets come
from a :class:`CredentialStore`, which hands out salted SCRAM keys
(:class:`ScramCredentials`) and never a plaintext password; PLAIN is checked
against those keys too.

Channel binding (RFC 5929): :func:`tls_unique`, :func:`tls_server_end_point`
and :func:`available_bindings` compute the binding data of a connection from
its :class:`ssl.SSLObject` (or :class:`ssl.SSLSocket`).  ``tls-unique`` only
exists up to TLS 1.2; ``tls-server-end-point`` works on every version.

String preparation.  RFC 5802 and RFC 4616 prepare user names and passwords
with SASLprep (RFC 4013), which RFC 8265 replaced with the PRECIS
``OpaqueString`` profile.  This module uses ``OpaqueString`` (from
precis-i18n, as :mod:`xmpp.jid` does for resourceparts) for user names and
passwords on both sides.  For ASCII input the two are the same; they differ
only for compatibility characters (``OpaqueString`` applies NFC where
SASLprep applied NFKC) and for characters SASLprep silently dropped (such as
U+00AD SOFT HYPHEN), which ``OpaqueString`` refuses.

Selection policy of :func:`select_mechanism`, in full:

1. Only names in the caller's ``preferred`` sequence are ever chosen, and the
   caller's order decides between them.
2. ``PLAIN`` is never chosen unless the stream is ``secure`` (TLS).
3. A ``-PLUS`` mechanism needs a channel binding type that both sides
   support: a type in ``bindings`` (ours) that the server announced through
   XEP-0440 (``server_bindings``).  When the server announced nothing
   (``server_bindings is None``) only ``tls-unique`` is assumed, because it
   is RFC 5802's default type.  Among common types the first of
   ``binding_preference`` wins, by default ``tls-server-end-point`` before
   ``tls-unique``: ``tls-unique`` is only sound when the TLS 1.2 handshake
   used the extended master secret (RFC 7627), which Python's :mod:`ssl`
   cannot confirm, while ``tls-server-end-point`` is the same on TLS 1.2 and
   1.3.
4. Downgrade refusal: when a ``-PLUS`` mechanism that the caller accepts is
   offered and has a common binding type, no non-``PLUS`` mechanism is chosen,
   even one the caller listed earlier; the first such ``-PLUS`` mechanism in
   the caller's order is used.  Choosing plain SCRAM there would let a man in
   the middle relay the exchange.
5. Otherwise the first acceptable non-``PLUS`` mechanism is used.  For SCRAM
   its GS2 flag is ``y`` ("the client supports channel binding but the server
   did not offer it") exactly when the server offered no ``-PLUS`` mechanism
   at all, this connection has binding data, and the caller accepts some
   ``-PLUS`` mechanism: a server that did offer ``-PLUS`` (and had it
   stripped by an attacker) then refuses the exchange.  It is ``n`` in every
   other case, including a server that offers ``-PLUS`` with binding types
   none of which we have (XEP-0440: ``y`` would wrongly fail there).
6. Nothing acceptable raises :class:`SASLError`: ``mechanism-too-weak`` when
   PLAIN was offered and refused only for want of TLS, ``invalid-mechanism``
   otherwise.
"""

from __future__ import annotations

import abc
import base64
import binascii
import collections
import dataclasses
import enum
import hashlib
import hmac
import re
import secrets
import ssl
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import precis_i18n
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

if TYPE_CHECKING:
    from xmpp.negotiator import StreamFeature
    from xmpp.session import Session

__all__ = [
    "NS_SASL",
    "NS_SASL_CB",
    "DEFAULT_MECHANISMS",
    "DEFAULT_BINDING_PREFERENCE",
    "MIN_ITERATIONS",
    "MAX_ITERATIONS",
    "SASLCondition",
    "SASLError",
    "ChannelBinding",
    "tls_unique",
    "tls_server_end_point",
    "available_bindings",
    "ClientMechanism",
    "PlainClient",
    "ScramClient",
    "client_mechanism",
    "select_mechanism",
    "ScramCredentials",
    "CredentialStore",
    "MemoryCredentialStore",
    "ServerMechanism",
    "PlainServer",
    "ScramServer",
    "server_mechanism",
    "server_mechanisms",
    "sasl",
    "sasl_server",
]

#: The namespace of the SASL stream feature and its elements (RFC 6120).
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
#: The namespace of the channel binding types a server announces (XEP-0440).
NS_SASL_CB = "urn:xmpp:sasl-cb:0"

#: The client's default preference, strongest first.
DEFAULT_MECHANISMS: tuple[str, ...] = (
    "SCRAM-SHA-512-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
)
#: The default order in which channel binding types are preferred.
DEFAULT_BINDING_PREFERENCE: tuple[str, ...] = ("tls-server-end-point", "tls-unique")
#: The smallest SCRAM iteration count a client accepts by default (RFC 7677).
MIN_ITERATIONS = 4096
#: The largest SCRAM iteration count a client accepts by default, so that a
#: hostile server cannot make the client compute PBKDF2 for minutes.
MAX_ITERATIONS = 1_000_000

# SCRAM hash names as mechanism suffixes, mapped to hashlib names.
_HASHES: dict[str, str] = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}
_HASH_NAMES = frozenset(_HASHES.values())
_PLUS = "-PLUS"
# What PLAIN's server side tries, in order, to find keys to check against.
_PLAIN_HASH_ORDER = ("sha256", "sha512", "sha1")
_AUTH_FAILED = "authentication failed"
_OPAQUE = precis_i18n.get_profile("OpaqueString")
# A channel binding type name: RFC 5802's cb-name.
_CB_NAME = re.compile(r"[A-Za-z0-9.\-]+\Z")
# A SCRAM nonce: printable ASCII other than ",".
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+\Z")
_ATTR = re.compile(r"[A-Za-z]=")
_MAX_PLAIN_FIELD = 255


class SASLCondition(str, enum.Enum):
    """The SASL failure conditions of RFC 6120 section 6.5.

    Each member is a string, so ``err.condition == "not-authorized"`` holds.
    """

    ABORTED = "aborted"
    ACCOUNT_DISABLED = "account-disabled"
    CREDENTIALS_EXPIRED = "credentials-expired"
    ENCRYPTION_REQUIRED = "encryption-required"
    INCORRECT_ENCODING = "incorrect-encoding"
    INVALID_AUTHZID = "invalid-authzid"
    INVALID_MECHANISM = "invalid-mechanism"
    MALFORMED_REQUEST = "malformed-request"
    MECHANISM_TOO_WEAK = "mechanism-too-weak"
    NOT_AUTHORIZED = "not-authorized"
    TEMPORARY_AUTH_FAILURE = "temporary-auth-failure"

    def __str__(self) -> str:
        return self.value


class SASLError(Exception):
    """A failed SASL exchange, with its RFC 6120 section 6.5 condition.

    ``condition`` is a :class:`SASLCondition` (a string naming a defined
    condition is converted; an unknown one raises ``ValueError``).  ``text``
    is an optional human-readable description in language ``lang``: the
    server's ``<text/>`` when the failure came from the server, or what this
    side found wrong.

    >>> err = SASLError("not-authorized", "authentication failed")
    >>> err.condition is SASLCondition.NOT_AUTHORIZED, str(err)
    (True, 'not-authorized: authentication failed')
    """

    condition: SASLCondition
    text: str | None
    lang: str | None

    def __init__(
        self,
        condition: SASLCondition | str,
        text: str | None = None,
        *,
        lang: str | None = None,
    ) -> None:
        cond = SASLCondition(condition)
        super().__init__(cond, text)
        self.condition = cond
        self.text = text
        self.lang = lang

    def __str__(self) -> str:
        if self.text:
            return f"{self.condition.value}: {self.text}"
        return self.condition.value

    def __repr__(self) -> str:
        return f"SASLError({self.condition.value!r}, {self.text!r})"


def _malformed(text: str) -> SASLError:
    return SASLError(SASLCondition.MALFORMED_REQUEST, text)


# ---------------------------------------------------------------------------
# Channel binding


@dataclasses.dataclass(frozen=True)
class ChannelBinding:
    """Channel binding data of one TLS connection (RFC 5056, RFC 5929).

    ``type`` is the registered binding type name, such as ``"tls-unique"`` or
    ``"tls-server-end-point"``, and ``data`` the binding data of this
    connection for that type.
    """

    type: str
    data: bytes

    def __post_init__(self) -> None:
        if not _CB_NAME.match(self.type):
            raise ValueError(f"invalid channel binding type name {self.type!r}")

    def __repr__(self) -> str:
        return f"ChannelBinding({self.type!r}, <{len(self.data)} bytes>)"


def tls_unique(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> bytes | None:
    """Return the ``tls-unique`` binding data (RFC 5929 section 3) of a connection.

    The data is the first Finished message of the latest handshake, as
    :meth:`ssl.SSLObject.get_channel_binding` gives it.  ``tls-unique`` is
    not defined for TLS 1.3 (RFC 8446 section C.5, RFC 9266), so the result
    is ``None`` there, and also before the handshake has completed.
    """
    version = ssl_object.version()
    if version is None or version == "TLSv1.3":
        return None
    try:
        data = ssl_object.get_channel_binding("tls-unique")
    except ValueError:
        return None
    return data or None


def tls_server_end_point(cert_der: bytes) -> bytes:
    """Return the ``tls-server-end-point`` binding data of a certificate.

    ``cert_der`` is the server's certificate in DER form.  As RFC 5929
    section 4.1 says, the certificate is hashed with the hash function of its
    own signature algorithm, except that MD5 and SHA-1 are replaced by
    SHA-256.  A certificate whose signature uses no single hash function
    (Ed25519, Ed448) has no defined binding: ``ValueError``.  So does input
    that is not a certificate.
    """
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        raise ValueError(f"unsupported certificate signature algorithm: {exc}") from exc
    if algorithm is None:
        raise ValueError(
            "tls-server-end-point is undefined for a certificate whose signature "
            "uses no single hash function (RFC 5929 section 4.1)"
        )
    if isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return digest.finalize()


def available_bindings(
    ssl_object: ssl.SSLObject | ssl.SSLSocket,
    *,
    server_side: bool,
    own_cert_der: bytes | None = None,
) -> dict[str, bytes]:
    """Return the channel binding data of a TLS connection, by type name.

    ``tls-unique`` is present on TLS 1.2 and earlier.  ``tls-server-end-point``
    hashes the server's certificate: a client (``server_side=False``) takes
    the peer's certificate from the connection; a server must pass its own
    certificate in DER form as ``own_cert_der``, because :mod:`ssl` does not
    give it back (without it, the type is left out).  It is also left out for
    a certificate for which it is undefined (Ed25519, Ed448).

    ``server_side`` must say which end of the connection ``ssl_object`` is:
    a mismatch raises ``ValueError``, because the two ends disagree on
    nothing else and the mistake would only show as failed logins.
    """
    actual = getattr(ssl_object, "server_side", server_side)
    if bool(actual) != server_side:
        raise ValueError(
            f"server_side={server_side} but the TLS object is the "
            f"{'server' if actual else 'client'} end"
        )
    out: dict[str, bytes] = {}
    cert_der = own_cert_der if server_side else ssl_object.getpeercert(binary_form=True)
    if cert_der:
        try:
            out["tls-server-end-point"] = tls_server_end_point(cert_der)
        except ValueError:
            pass
    unique = tls_unique(ssl_object)
    if unique is not None:
        out["tls-unique"] = unique
    return out


# ---------------------------------------------------------------------------
# Shared SCRAM helpers


def _prepare(value: str, what: str) -> str:
    """Prepare a user name or password with PRECIS OpaqueString."""
    try:
        out: str = _OPAQUE.enforce(value)
    except UnicodeError as exc:
        raise ValueError(f"the {what} cannot be prepared (OpaqueString): {exc}") from None
    return out


def _escape_saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _unescape_saslname(value: str, what: str) -> str:
    if "=" not in value:
        return value
    parts = value.split("=")
    out = [parts[0]]
    for part in parts[1:]:
        if part.startswith("2C"):
            out.append("," + part[2:])
        elif part.startswith("3D"):
            out.append("=" + part[2:])
        else:
            raise _malformed(f"bad escape in {what}: only =2C and =3D are allowed")
    return "".join(out)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _malformed(f"{what} is not valid base64") from None


def _decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError(SASLCondition.INCORRECT_ENCODING, f"{what} is not UTF-8") from None


def _attributes(message: str, what: str) -> list[tuple[str, str]]:
    """Split a SCRAM message into ``(letter, value)`` pairs."""
    out = []
    for field in message.split(","):
        if not _ATTR.match(field):
            raise _malformed(f"{what}: expected attr=value, got {field[:20]!r}")
        out.append((field[0], field[2:]))
    return out


def _make_nonce() -> str:
    # URL-safe base64: printable, never ",".
    return secrets.token_urlsafe(24)


def _hmac(key: bytes, msg: bytes, hash_name: str) -> bytes:
    return hmac.new(key, msg, hash_name).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


class _SaltedPasswordCache:
    """A small bounded LRU cache of PBKDF2 results.

    Keys hold a keyed hash of the password, never the password itself.  The
    values are password equivalents for the SCRAM exchange, so the cache is
    kept small (reconnects need a handful) and in process memory only.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._key = secrets.token_bytes(32)
        self._data: collections.OrderedDict[tuple[str, bytes, bytes, int], bytes] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, password: bytes, salt: bytes, iterations: int, hash_name: str) -> bytes:
        tag = hmac.new(self._key, password, "sha256").digest()
        key = (hash_name, tag, salt, iterations)
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        value = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_salted_passwords = _SaltedPasswordCache(64)


def _parse_scram_name(name: str) -> tuple[str, bool] | None:
    """Return ``(hashlib name, plus)`` for a SCRAM mechanism name, else None."""
    if not name.startswith("SCRAM-"):
        return None
    rest = name[len("SCRAM-") :]
    plus = rest.endswith(_PLUS)
    if plus:
        rest = rest[: -len(_PLUS)]
    hash_name = _HASHES.get(rest)
    if hash_name is None:
        return None
    return hash_name, plus


def _scram_name(hash_name: str, plus: bool) -> str:
    for suffix, name in _HASHES.items():
        if name == hash_name:
            return f"SCRAM-{suffix}{_PLUS if plus else ''}"
    raise ValueError(f"unsupported SCRAM hash {hash_name!r}; use one of {sorted(_HASH_NAMES)}")


# ---------------------------------------------------------------------------
# Client mechanisms


class ClientMechanism(abc.ABC):
    """The client side of one SASL exchange, without I/O.

    The caller sends :meth:`initial` as the initial response of ``<auth/>``
    (``None`` means none), answers each ``<challenge/>`` with :meth:`step`,
    and on ``<success/>`` calls :meth:`finish` with its additional data, which
    verifies the server where the mechanism can.  A :class:`SASLError` from
    any of them means the exchange must be given up (send ``<abort/>``).
    A mechanism object serves one exchange.
    """

    #: The registered mechanism name, such as ``"SCRAM-SHA-256-PLUS"``.
    name: str

    @abc.abstractmethod
    def initial(self) -> bytes | None:
        """Return the initial response to send with ``<auth/>``, or ``None``."""

    @abc.abstractmethod
    def step(self, challenge: bytes) -> bytes:
        """Return the response to the server's ``challenge``."""

    @abc.abstractmethod
    def finish(self, additional_data: bytes | None) -> None:
        """Check the additional data of ``<success/>``; raise SASLError if wrong."""


class PlainClient(ClientMechanism):
    """The client side of PLAIN (RFC 4616).

    The message is ``authzid NUL authcid NUL password`` in UTF-8; the
    authentication identity (``username``) and the password are prepared
    with PRECIS OpaqueString, the optional authorization identity
    (``authzid``, a JID in XMPP) is sent as given.  Each field is limited to
    255 bytes, and none may contain NUL: ``ValueError`` otherwise.  PLAIN does
    not authenticate the server; :meth:`finish` only checks that the server
    sent no additional data.
    """

    name = "PLAIN"

    def __init__(self, username: str, password: str, *, authzid: str | None = None) -> None:
        user = _prepare(username, "user name").encode("utf-8")
        secret = _prepare(password, "password").encode("utf-8")
        zid = (authzid or "").encode("utf-8")
        for what, value in (("user name", user), ("password", secret), ("authzid", zid)):
            if len(value) > _MAX_PLAIN_FIELD:
                raise ValueError(f"the {what} is longer than 255 bytes")
            if b"\x00" in value:
                raise ValueError(f"the {what} contains NUL")
        self._message = zid + b"\x00" + user + b"\x00" + secret
        self._sent = False

    def initial(self) -> bytes:
        """Return the whole PLAIN message; it is the only one."""
        self._sent = True
        return self._message

    def step(self, challenge: bytes) -> bytes:
        """Answer an empty challenge (the server ignored the initial response)."""
        if challenge:
            raise _malformed("PLAIN has no server challenge with data")
        if self._sent:
            raise _malformed("the server asked again after the PLAIN message was sent")
        return self.initial()

    def finish(self, additional_data: bytes | None) -> None:
        """Accept ``<success/>``, which carries no data for PLAIN."""
        if additional_data:
            raise _malformed("unexpected additional data with PLAIN success")
        if not self._sent:
            raise _malformed("success before the PLAIN message was sent")


class ScramClient(ClientMechanism):
    """The client side of SCRAM (RFC 5802, RFC 7677), with or without ``-PLUS``.

    ``hash_name`` is ``"sha1"``, ``"sha256"`` or ``"sha512"``.  With
    ``plus=True`` the mechanism is the ``-PLUS`` variant and
    ``channel_binding`` is required: the GS2 header is ``p=<type>,,`` and the
    binding data goes into the client's final message.  Without ``plus``, a
    ``channel_binding`` means "this client could bind but the server did not
    offer ``-PLUS``" and sends the ``y`` flag (the data itself is not used);
    no ``channel_binding`` sends ``n``.  See :func:`select_mechanism`.

    ``username`` and ``password`` are prepared with PRECIS OpaqueString and
    the name is escaped (``=2C``, ``=3D``); ``authzid`` (the JID to act as)
    is sent escaped as given.  The client refuses a server whose iteration
    count is below ``min_iterations`` or above ``max_iterations``, whose
    nonce does not extend ours, whose message is malformed, or whose final
    signature is wrong (all :class:`SASLError`).  ``nonce`` fixes the client
    nonce (for tests only; it must be printable ASCII without ``,``).

    The salted password is computed once per (password, salt, iteration
    count, hash) in a small process-wide cache, so reconnecting is cheap.
    """

    def __init__(
        self,
        hash_name: str,
        username: str,
        password: str,
        *,
        plus: bool = False,
        channel_binding: ChannelBinding | None = None,
        authzid: str | None = None,
        min_iterations: int = MIN_ITERATIONS,
        max_iterations: int = MAX_ITERATIONS,
        nonce: str | None = None,
    ) -> None:
        self.name = _scram_name(hash_name, plus)
        if plus and channel_binding is None:
            raise ValueError(f"{self.name} needs a channel binding")
        if nonce is not None and not _NONCE.match(nonce):
            raise ValueError("a SCRAM nonce is printable ASCII without ','")
        self._hash = hash_name
        self._password = _prepare(password, "password").encode("utf-8")
        user = _escape_saslname(_prepare(username, "user name"))
        if channel_binding is None:
            flag = "n"
        elif plus:
            flag = "p=" + channel_binding.type
        else:
            flag = "y"
        zid = "" if authzid is None else "a=" + _escape_saslname(authzid)
        self._gs2_header = f"{flag},{zid},".encode("utf-8")
        self._cbind_data = channel_binding.data if plus and channel_binding else b""
        self._nonce = nonce if nonce is not None else _make_nonce()
        self._first_bare = f"n={user},r={self._nonce}".encode("utf-8")
        self._min_iterations = min_iterations
        self._max_iterations = max_iterations
        self._state = "start"
        self._server_signature = b""

    @property
    def gs2_header(self) -> bytes:
        """The GS2 header this client sends, such as ``b"p=tls-unique,,"``."""
        return self._gs2_header

    def initial(self) -> bytes:
        """Return the client-first-message."""
        if self._state != "start":
            raise _malformed("the SCRAM exchange has already started")
        self._state = "first-sent"
        return self._gs2_header + self._first_bare

    def step(self, challenge: bytes) -> bytes:
        """Answer the server-first-message, or accept a server-final as challenge.

        Some servers send the server-final-message as a last challenge and
        then an empty ``<success/>``; it is verified here and the answer is
        empty.
        """
        if self._state == "start":
            if challenge:
                raise _malformed("SCRAM starts with the client's message")
            return self.initial()
        if self._state == "first-sent":
            return self._answer_first(challenge)
        if self._state == "final-sent":
            self._verify_final(challenge)
            return b""
        raise _malformed("unexpected challenge after the SCRAM exchange ended")

    def finish(self, additional_data: bytes | None) -> None:
        """Verify the server signature (``v=``) of ``<success/>``."""
        if additional_data:
            if self._state not in ("final-sent", "verified"):
                raise _malformed("server-final-message before the client's final message")
            self._verify_final(additional_data)
            return
        if self._state != "verified":
            raise SASLError(
                SASLCondition.NOT_AUTHORIZED,
                "the server reported success without proving it knows the password",
            )

    def _answer_first(self, challenge: bytes) -> bytes:
        text = _decode_utf8(challenge, "server-first-message")
        if text.startswith("m="):
            raise _malformed("server-first-message has an unsupported mandatory extension")
        attrs = _attributes(text, "server-first-message")
        if len(attrs) < 3 or [a for a, _ in attrs[:3]] != ["r", "s", "i"]:
            raise _malformed("server-first-message must be r=,s=,i=")
        nonce, salt_b64, count = attrs[0][1], attrs[1][1], attrs[2][1]
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise _malformed("the server nonce does not extend the client nonce")
        if not _NONCE.match(nonce):
            raise _malformed("the server nonce has characters a nonce cannot have")
        salt = _unb64(salt_b64, "the salt")
        if not salt:
            raise _malformed("the salt is empty")
        if not count.isascii() or not count.isdigit() or count.startswith("0"):
            raise _malformed("the iteration count is not a positive integer")
        iterations = int(count)
        if iterations < self._min_iterations:
            raise SASLError(
                SASLCondition.MECHANISM_TOO_WEAK,
                f"iteration count {iterations} is below the minimum {self._min_iterations}",
            )
        if iterations > self._max_iterations:
            raise _malformed(
                f"iteration count {iterations} is above the maximum {self._max_iterations}"
            )
        salted = _salted_passwords.get(self._password, salt, iterations, self._hash)
        cbind = _b64(self._gs2_header + self._cbind_data)
        without_proof = f"c={cbind},r={nonce}".encode("ascii")
        auth_message = self._first_bare + b"," + challenge + b"," + without_proof
        client_key = _hmac(salted, b"Client Key", self._hash)
        stored_key = hashlib.new(self._hash, client_key).digest()
        signature = _hmac(stored_key, auth_message, self._hash)
        proof = _xor(client_key, signature)
        server_key = _hmac(salted, b"Server Key", self._hash)
        self._server_signature = _hmac(server_key, auth_message, self._hash)
        self._state = "final-sent"
        return without_proof + b",p=" + _b64(proof).encode("ascii")

    def _verify_final(self, data: bytes) -> None:
        text = _decode_utf8(data, "server-final-message")
        if text.startswith("e="):
            raise SASLError(SASLCondition.NOT_AUTHORIZED, f"server error: {text[2:]}")
        if not text.startswith("v="):
            raise _malformed("server-final-message must start with v= or e=")
        value = text[2:].split(",", 1)[0]
        signature = _unb64(value, "the server signature")
        if not hmac.compare_digest(signature, self._server_signature):
            raise SASLError(
                SASLCondition.NOT_AUTHORIZED,
                "wrong server signature: the server does not know the password "
                "(or the exchange was tampered with)",
            )
        self._state = "verified"


def client_mechanism(
    name: str,
    username: str,
    password: str,
    *,
    channel_binding: ChannelBinding | None = None,
    authzid: str | None = None,
    min_iterations: int = MIN_ITERATIONS,
) -> ClientMechanism:
    """Build the client side of mechanism ``name``.

    ``channel_binding`` is what :func:`select_mechanism` returned with the
    name: required for a ``-PLUS`` mechanism, the ``y`` flag for plain SCRAM,
    ignored by PLAIN.  Unknown names raise ``SASLError(invalid-mechanism)``.
    """
    if name == "PLAIN":
        return PlainClient(username, password, authzid=authzid)
    parsed = _parse_scram_name(name)
    if parsed is None:
        raise SASLError(SASLCondition.INVALID_MECHANISM, f"unsupported mechanism {name!r}")
    hash_name, plus = parsed
    return ScramClient(
        hash_name,
        username,
        password,
        plus=plus,
        channel_binding=channel_binding,
        authzid=authzid,
        min_iterations=min_iterations,
    )


def _supported(name: str) -> bool:
    return name == "PLAIN" or _parse_scram_name(name) is not None


def select_mechanism(
    offered: Iterable[str],
    preferred: Sequence[str],
    *,
    secure: bool,
    bindings: Mapping[str, bytes],
    server_bindings: Iterable[str] | None,
    binding_preference: Sequence[str] = DEFAULT_BINDING_PREFERENCE,
) -> tuple[str, ChannelBinding | None]:
    """Choose the mechanism to use and the channel binding that goes with it.

    ``offered`` are the server's mechanism names; ``preferred`` the
    mechanisms the caller accepts, most wanted first (for example
    :data:`DEFAULT_MECHANISMS`); ``secure`` whether the stream is under TLS;
    ``bindings`` this connection's binding data by type
    (:func:`available_bindings`); ``server_bindings`` the types the server
    announced (XEP-0440), or ``None`` if it announced none.

    The result is ``(name, binding)``.  For a ``-PLUS`` mechanism ``binding``
    is the binding to use; for plain SCRAM a binding means the ``y`` GS2
    flag and ``None`` the ``n`` flag; for PLAIN it is ``None``.  Pass both to
    :func:`client_mechanism`.  The rules, downgrade refusal included, are
    in the module's documentation.  Nothing acceptable raises
    :class:`SASLError` (``mechanism-too-weak`` or ``invalid-mechanism``).
    """
    offered_set = {m.strip().upper() for m in offered}
    prefs = [p.strip().upper() for p in preferred]
    ours = [t for t in binding_preference if t in bindings]
    ours += sorted(t for t in bindings if t not in ours)
    theirs = {"tls-unique"} if server_bindings is None else set(server_bindings)
    common = [t for t in ours if t in theirs]

    plus = [p for p in prefs if p.endswith(_PLUS) and p in offered_set and _supported(p)]
    if plus and common:
        return plus[0], ChannelBinding(common[0], bindings[common[0]])

    refused_plain = False
    for name in prefs:
        if name.endswith(_PLUS) or name not in offered_set or not _supported(name):
            continue
        if name == "PLAIN":
            if not secure:
                refused_plain = True
                continue
            return name, None
        server_plus = any(m.endswith(_PLUS) for m in offered_set)
        wants_plus = any(p.endswith(_PLUS) and _supported(p) for p in prefs)
        if ours and wants_plus and not server_plus:
            return name, ChannelBinding(ours[0], bindings[ours[0]])
        return name, None

    if refused_plain:
        raise SASLError(
            SASLCondition.MECHANISM_TOO_WEAK,
            "the only acceptable mechanism offered is PLAIN, which needs TLS",
        )
    if plus:
        raise SASLError(
            SASLCondition.INVALID_MECHANISM,
            f"the server offered {', '.join(plus)} but no channel binding type in "
            f"common (ours: {', '.join(ours) or 'none'}; "
            f"the server's: {', '.join(sorted(theirs)) or 'none'})",
        )
    raise SASLError(
        SASLCondition.INVALID_MECHANISM,
        f"no acceptable mechanism: the server offered "
        f"{', '.join(sorted(offered_set)) or 'none'}; we accept {', '.join(prefs) or 'none'}",
    )


# ---------------------------------------------------------------------------
# Server side: credentials


@dataclasses.dataclass(frozen=True)
class ScramCredentials:
    """The salted SCRAM keys of one user for one hash (RFC 5802 section 3).

    ``stored_key`` is ``H(HMAC(SaltedPassword, "Client Key"))`` and
    ``server_key`` is ``HMAC(SaltedPassword, "Server Key")``, where
    ``SaltedPassword`` is PBKDF2 of the prepared password with ``salt`` and
    ``iterations``.  They verify a login without being usable to log in
    elsewhere; they do not reveal the password.
    """

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def derive(
        cls,
        password: str,
        *,
        hash_name: str,
        salt: bytes | None = None,
        iterations: int = MIN_ITERATIONS,
    ) -> ScramCredentials:
        """Derive the keys of ``password`` (prepared with OpaqueString).

        ``hash_name`` is ``"sha1"``, ``"sha256"`` or ``"sha512"``; ``salt``
        defaults to 16 random bytes.
        """
        if hash_name not in _HASH_NAMES:
            raise ValueError(f"unsupported SCRAM hash {hash_name!r}")
        if iterations < 1:
            raise ValueError("the iteration count must be positive")
        salt = secrets.token_bytes(16) if salt is None else salt
        secret = _prepare(password, "password").encode("utf-8")
        salted = hashlib.pbkdf2_hmac(hash_name, secret, salt, iterations)
        client_key = _hmac(salted, b"Client Key", hash_name)
        return cls(
            salt=salt,
            iterations=iterations,
            stored_key=hashlib.new(hash_name, client_key).digest(),
            server_key=_hmac(salted, b"Server Key", hash_name),
        )


class CredentialStore(Protocol):
    """Where the server side finds the SCRAM keys of a user.

    The store never needs a plaintext password: PLAIN logins are checked
    against the SCRAM keys too.
    """

    async def scram_credentials(self, username: str, hash_name: str) -> ScramCredentials | None:
        """Return the keys of ``username`` for ``hash_name``, or ``None``.

        ``username`` is the prepared (OpaqueString) user name the client
        sent; ``hash_name`` is ``"sha1"``, ``"sha256"`` or ``"sha512"``.
        ``None`` means no such user, or no keys for that hash.
        """
        ...


class MemoryCredentialStore:
    """A :class:`CredentialStore` in memory, for tests and small servers.

    ``users`` maps user names to passwords; the keys for SHA-1, SHA-256 and
    SHA-512 are derived at once (with ``iterations`` and a random salt each)
    and the passwords are not kept.  User names and passwords are prepared
    with OpaqueString, as the mechanisms prepare what clients send.
    """

    def __init__(
        self, users: Mapping[str, str] | None = None, iterations: int = MIN_ITERATIONS
    ) -> None:
        self.iterations = iterations
        self._keys: dict[tuple[str, str], ScramCredentials] = {}
        for username, password in (users or {}).items():
            self.add_user(username, password)

    def add_user(self, username: str, password: str) -> None:
        """Add a user, or replace the password of an existing one."""
        name = _prepare(username, "user name")
        for hash_name in sorted(_HASH_NAMES):
            self._keys[(name, hash_name)] = ScramCredentials.derive(
                password, hash_name=hash_name, iterations=self.iterations
            )

    def remove_user(self, username: str) -> None:
        """Remove a user; removing an unknown user does nothing."""
        name = _prepare(username, "user name")
        for hash_name in _HASH_NAMES:
            self._keys.pop((name, hash_name), None)

    def __contains__(self, username: object) -> bool:
        if not isinstance(username, str):
            return False
        try:
            name = _prepare(username, "user name")
        except ValueError:
            return False
        return (name, "sha256") in self._keys

    async def scram_credentials(self, username: str, hash_name: str) -> ScramCredentials | None:
        """Return the keys of ``username`` for ``hash_name``, or ``None``."""
        return self._keys.get((username, hash_name))


# A per-process secret from which the fake salts of unknown users are made,
# so that the same unknown name always gets the same salt.
_FAKE_SALT_KEY = secrets.token_bytes(32)


def _fake_credentials(username: str, hash_name: str, iterations: int) -> ScramCredentials:
    salt = hmac.new(_FAKE_SALT_KEY, f"{hash_name}\x00{username}".encode(), "sha256").digest()
    size = hashlib.new(hash_name).digest_size
    return ScramCredentials(
        salt=salt[:16],
        iterations=iterations,
        stored_key=secrets.token_bytes(size),
        server_key=secrets.token_bytes(size),
    )


# ---------------------------------------------------------------------------
# Server mechanisms


class ServerMechanism(abc.ABC):
    """The receiving side of one SASL exchange.

    The caller awaits :meth:`step` with the initial response of ``<auth/>``
    (``None`` when there was none) and then with each ``<response/>``.  A
    returned ``bytes`` is the next ``<challenge/>`` (possibly empty); ``None``
    means the exchange is over and succeeded: :attr:`done` is true,
    ``<success/>`` carries :attr:`success_data`, and :attr:`username` and
    :attr:`authzid` say who logged in and as whom they want to act (the
    caller decides whether that is allowed: ``invalid-authzid``).  A
    :class:`SASLError` is the ``<failure/>`` to send; a wrong password and an
    unknown user give the very same error.  ``step`` is a coroutine only
    because the credential store is asynchronous.
    """

    #: The registered mechanism name.
    name: str
    #: Whether the exchange has succeeded.
    done: bool
    #: The additional data for ``<success/>``, or ``None``.
    success_data: bytes | None
    #: The authenticated user name (prepared), once known.
    username: str | None
    #: The authorization identity the client asked for, or ``None``.
    authzid: str | None

    def __init__(self) -> None:
        self.done = False
        self.success_data = None
        self.username = None
        self.authzid = None
        self._failed = False

    async def step(self, response: bytes | None) -> bytes | None:
        """Take one client message; return the next challenge or ``None`` when done."""
        if self.done:
            raise _malformed("the exchange has already succeeded")
        if self._failed:
            raise _malformed("the exchange has already failed")
        try:
            return await self._step(response)
        except SASLError:
            self._failed = True
            self.username = None
            self.authzid = None
            raise

    @abc.abstractmethod
    async def _step(self, response: bytes | None) -> bytes | None: ...


async def _first_credentials(
    store: CredentialStore, username: str
) -> tuple[str, ScramCredentials] | None:
    for hash_name in _PLAIN_HASH_ORDER:
        creds = await store.scram_credentials(username, hash_name)
        if creds is not None:
            return hash_name, creds
    return None


class PlainServer(ServerMechanism):
    """The receiving side of PLAIN (RFC 4616), checked against SCRAM keys.

    The password the client sent is prepared and salted with the salt and
    iteration count of the first keys the store has for the user (SHA-256,
    then SHA-512, then SHA-1), and the resulting StoredKey is compared with
    the stored one in constant time.  Offer PLAIN only under TLS.
    """

    name = "PLAIN"

    def __init__(
        self, store: CredentialStore, *, unknown_user_iterations: int = MIN_ITERATIONS
    ) -> None:
        super().__init__()
        self._store = store
        self._unknown_iterations = unknown_user_iterations

    async def _step(self, response: bytes | None) -> bytes | None:
        if response is None:
            return b""
        fields = response.split(b"\x00")
        if len(fields) != 3:
            raise _malformed("PLAIN message must be authzid NUL authcid NUL password")
        zid_b, user_b, password_b = fields
        if not user_b or not password_b:
            raise _malformed("PLAIN user name and password may not be empty")
        if any(len(f) > _MAX_PLAIN_FIELD for f in fields):
            raise _malformed("a PLAIN field is longer than 255 bytes")
        zid = _decode_utf8(zid_b, "the authzid")
        try:
            username = _prepare(_decode_utf8(user_b, "the user name"), "user name")
            password = _prepare(_decode_utf8(password_b, "the password"), "password")
        except ValueError:
            raise SASLError(SASLCondition.NOT_AUTHORIZED, _AUTH_FAILED) from None
        found = await _first_credentials(self._store, username)
        if found is None:
            hash_name = "sha256"
            creds = _fake_credentials(username, hash_name, self._unknown_iterations)
        else:
            hash_name, creds = found
        salted = _salted_passwords.get(
            password.encode("utf-8"), creds.salt, creds.iterations, hash_name
        )
        client_key = _hmac(salted, b"Client Key", hash_name)
        stored_key = hashlib.new(hash_name, client_key).digest()
        if not hmac.compare_digest(stored_key, creds.stored_key) or found is None:
            raise SASLError(SASLCondition.NOT_AUTHORIZED, _AUTH_FAILED)
        self.username = username
        self.authzid = zid or None
        self.done = True
        return None


class ScramServer(ServerMechanism):
    """The receiving side of SCRAM (RFC 5802, RFC 7677), with or without ``-PLUS``.

    ``bindings`` is this server's binding data by type
    (:func:`available_bindings` with ``server_side=True``); a ``-PLUS``
    client's ``c=`` must carry exactly the data of the type it named.
    ``offered_plus`` says whether this server advertised any ``-PLUS``
    mechanism: a client that then sends the ``y`` flag saw a list with
    ``-PLUS`` stripped, and the exchange fails (downgrade).  An unknown user
    gets a made-up salt (the same for the same name) and fails at the proof
    with the same error as a wrong password.  ``nonce`` fixes the server's
    part of the nonce (tests only).
    """

    def __init__(
        self,
        hash_name: str,
        store: CredentialStore,
        *,
        plus: bool = False,
        bindings: Mapping[str, bytes] | None = None,
        offered_plus: bool = False,
        unknown_user_iterations: int = MIN_ITERATIONS,
        nonce: str | None = None,
    ) -> None:
        super().__init__()
        self.name = _scram_name(hash_name, plus)
        if nonce is not None and not _NONCE.match(nonce):
            raise ValueError("a SCRAM nonce is printable ASCII without ','")
        self._hash = hash_name
        self._plus = plus
        self._store = store
        self._bindings = dict(bindings or {})
        self._offered_plus = offered_plus
        self._unknown_iterations = unknown_user_iterations
        self._server_nonce = nonce if nonce is not None else _make_nonce()
        self._state = "start"
        self._gs2_header = b""
        self._cbind_data = b""
        self._first_bare = b""
        self._server_first = b""
        self._nonce = ""
        self._creds: ScramCredentials | None = None
        self._known = False

    async def _step(self, response: bytes | None) -> bytes | None:
        if self._state == "start":
            if response is None:
                return b""
            return await self._client_first(response)
        if response is None:
            raise _malformed("missing SCRAM client-final-message")
        self._client_final(response)
        return None

    def _parse_gs2(self, text: str) -> tuple[str, str | None, str]:
        """Split a client-first-message into flag, authzid and the bare message."""
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise _malformed("client-first-message has no GS2 header")
        flag, zid_field, bare = parts
        if zid_field == "":
            authzid = None
        elif zid_field.startswith("a="):
            authzid = _unescape_saslname(zid_field[2:], "the authzid")
            if not authzid:
                raise _malformed("empty authzid")
        else:
            raise _malformed("the GS2 header's second field must be empty or a=")
        return flag, authzid, bare

    async def _client_first(self, response: bytes) -> bytes:
        text = _decode_utf8(response, "client-first-message")
        flag, authzid, bare = self._parse_gs2(text)
        if flag.startswith("p="):
            cb_type = flag[2:]
            if not _CB_NAME.match(cb_type):
                raise _malformed("invalid channel binding type name")
            if not self._plus:
                raise _malformed(f"channel binding requested with {self.name}")
            if cb_type not in self._bindings:
                raise SASLError(
                    SASLCondition.NOT_AUTHORIZED,
                    f"channel binding type {cb_type!r} is not supported here",
                )
            self._cbind_data = self._bindings[cb_type]
        elif flag in ("n", "y"):
            if self._plus:
                raise _malformed(f"{self.name} needs channel binding (p=)")
            if flag == "y" and self._offered_plus:
                raise SASLError(
                    SASLCondition.NOT_AUTHORIZED,
                    "downgrade detected: the client supports channel binding and "
                    "the server offered it, but the client did not see the offer",
                )
        else:
            raise _malformed("the GS2 flag must be n, y or p=<type>")
        if bare.startswith("m="):
            raise _malformed("unsupported mandatory extension in client-first-message")
        attrs = _attributes(bare, "client-first-message")
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
            raise _malformed("client-first-message must be n=,r=")
        raw_name = _unescape_saslname(attrs[0][1], "the user name")
        client_nonce = attrs[1][1]
        if not _NONCE.match(client_nonce):
            raise _malformed("the client nonce is empty or has characters a nonce cannot have")
        try:
            username = _prepare(raw_name, "user name")
        except ValueError:
            username = raw_name  # no such user can exist; fail at the proof.
            creds = None
        else:
            creds = await self._store.scram_credentials(username, self._hash)
        self._known = creds is not None
        if creds is None:
            creds = _fake_credentials(username, self._hash, self._unknown_iterations)
        self._creds = creds
        self.username = username
        self.authzid = authzid
        self._gs2_header = text[: len(text) - len(bare)].encode("utf-8")
        self._first_bare = bare.encode("utf-8")
        self._nonce = client_nonce + self._server_nonce
        self._server_first = (
            f"r={self._nonce},s={_b64(creds.salt)},i={creds.iterations}".encode("ascii")
        )
        self._state = "first-sent"
        return self._server_first

    def _client_final(self, response: bytes) -> None:
        text = _decode_utf8(response, "client-final-message")
        attrs = _attributes(text, "client-final-message")
        if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
            raise _malformed("client-final-message must be c=,r=,...,p=")
        if attrs[1][1] != self._nonce:
            raise _malformed("the nonce of client-final-message is not the one agreed")
        cbind = _unb64(attrs[0][1], "the channel binding")
        if not hmac.compare_digest(cbind, self._gs2_header + self._cbind_data):
            raise SASLError(
                SASLCondition.NOT_AUTHORIZED,
                "channel binding mismatch: the client is bound to another TLS channel"
                if self._plus
                else "the GS2 header of client-final-message differs from the first",
            )
        proof = _unb64(attrs[-1][1], "the proof")
        assert self._creds is not None
        creds = self._creds
        if len(proof) != len(creds.stored_key):
            raise _malformed("the proof has the wrong length")
        without_proof = text[: text.rindex(",p=")].encode("utf-8")
        auth_message = self._first_bare + b"," + self._server_first + b"," + without_proof
        signature = _hmac(creds.stored_key, auth_message, self._hash)
        client_key = _xor(proof, signature)
        stored_key = hashlib.new(self._hash, client_key).digest()
        if not hmac.compare_digest(stored_key, creds.stored_key) or not self._known:
            raise SASLError(SASLCondition.NOT_AUTHORIZED, _AUTH_FAILED)
        server_signature = _hmac(creds.server_key, auth_message, self._hash)
        self.success_data = b"v=" + _b64(server_signature).encode("ascii")
        self._state = "done"
        self.done = True


def server_mechanism(
    name: str,
    store: CredentialStore,
    *,
    bindings: Mapping[str, bytes],
    offered_plus: bool,
) -> ServerMechanism:
    """Build the receiving side of mechanism ``name``.

    ``bindings`` is this server's binding data by type; ``offered_plus``
    whether a ``-PLUS`` mechanism was advertised on this stream.  A name this
    module does not implement raises ``SASLError(invalid-mechanism)``; the
    caller must itself refuse a name it did not advertise (for example PLAIN
    without TLS, as ``mechanism-too-weak`` or ``encryption-required``).
    """
    if name == "PLAIN":
        return PlainServer(store)
    parsed = _parse_scram_name(name)
    if parsed is None:
        raise SASLError(SASLCondition.INVALID_MECHANISM, f"unsupported mechanism {name!r}")
    hash_name, plus = parsed
    if plus and not bindings:
        raise SASLError(
            SASLCondition.INVALID_MECHANISM, f"{name} needs a channel binding this stream lacks"
        )
    return ScramServer(
        hash_name, store, plus=plus, bindings=bindings, offered_plus=offered_plus
    )


def server_mechanisms(secure: bool, bindings: Mapping[str, bytes]) -> list[str]:
    """Return the mechanism names to advertise, strongest first.

    ``-PLUS`` variants are listed when ``bindings`` has any binding data;
    PLAIN only when the stream is ``secure`` (TLS).  The XEP-0440 list of
    binding types to announce beside them is ``sorted(bindings)``.
    """
    names: list[str] = []
    if bindings:
        names += [n for n in DEFAULT_MECHANISMS if n.endswith(_PLUS)]
    names += [n for n in DEFAULT_MECHANISMS if n.startswith("SCRAM-") and not n.endswith(_PLUS)]
    if secure:
        names.append("PLAIN")
    return names


# ---------------------------------------------------------------------------
# The stream features: SASL over <auth/>, <challenge/>, <response/>,
# <success/> and <failure/> (RFC 6120 section 6.4), on both sides.

def _el(local: str, text: str | None = None, attrs: Sequence[tuple[str, str]] = ()) -> bytes:
    out = "<" + local + " xmlns='" + NS_SASL + "'"
    for k, v in attrs:
        out += " " + k + "='" + v + "'"
    if text is None:
        return (out + "/>").encode()
    return (out + ">" + text + "</" + local + ">").encode()


def _b64_payload(data: bytes | None) -> str | None:
    """The text of an element carrying ``data`` (``=`` for empty, RFC 6120 6.4.2)."""
    if data is None:
        return None
    if not data:
        return "="
    return base64.b64encode(data).decode("ascii")


def _read_payload(text: str) -> bytes:
    text = text.strip()
    if text == "=":
        return b""
    if not text:
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASLError(SASLCondition.INCORRECT_ENCODING, "payload is not valid base64") from None


def _failure_error(el: Any) -> SASLError:
    cond = SASLCondition.NOT_AUTHORIZED
    text: str | None = None
    lang: str | None = None
    for child in el.children():
        local = child.name.local
        if local == "text":
            text = child.text
            lang = child.get("lang", None, "http://www.w3.org/XML/1998/namespace")
        else:
            try:
                cond = SASLCondition(local)
            except ValueError:
                cond = SASLCondition.NOT_AUTHORIZED
    return SASLError(cond, text, lang=lang)


def _offered_bindings(session: Session) -> list[str] | None:
    from xmpp.xmlstream import Element, Name

    cb = session.features.get(Name(NS_SASL_CB, "sasl-channel-binding"))
    if not isinstance(cb, Element):
        return None
    return [c.get("type") or "" for c in cb.children() if c.name.local == "channel-binding"]


def sasl(
    username: str,
    password: str,
    *,
    mechanisms: Sequence[str] = DEFAULT_MECHANISMS,
    authzid: str | None = None,
    timeout: float = 30.0,
) -> StreamFeature:
    """The SASL stream feature, initiating side (a client logging in).

    ``mechanisms`` is the caller's preference, strongest first; the choice
    follows :func:`select_mechanism` (PLAIN never without TLS, ``-PLUS``
    whenever both sides can bind the channel, downgrades refused).  Sets
    ``AUTHN`` and restarts the stream; a ``<failure/>`` raises
    :class:`SASLError` with the server's condition and text.  The XML console
    never sees the payloads.
    """
    from xmpp.negotiator import StreamFeature
    from xmpp.session import SessionState
    from xmpp.xmlstream import Name

    def parse(session: Session, el: Any) -> tuple[bool, list[str]]:
        offered = [
            c.text.strip()
            for c in el.children()
            if c.name.local == "mechanism"
        ]
        return True, offered

    async def negotiate(session: Session, data: Any) -> tuple[int, bool]:
        s: Any = session
        if s.state & SessionState.RECEIVED:
            raise RuntimeError("sasl() is the initiating side; the receiving side is sasl_server()")
        offered = list(data or [])
        tls = s.tls
        bindings = available_bindings(tls, server_side=False) if tls is not None else {}
        name, binding = select_mechanism(
            offered,
            mechanisms,
            secure=bool(s.state & SessionState.SECURE),
            bindings=bindings,
            server_bindings=_offered_bindings(s),
        )
        mech = client_mechanism(name, username, password, channel_binding=binding, authzid=authzid)
        s._redact = True
        try:
            payload = _b64_payload(mech.initial())
            s.write_raw(
                _el("auth", payload, [("mechanism", name)]),
                shown=_el("auth", None if payload is None else "[redacted]", [("mechanism", name)]),
            )
            while True:
                el = await s.read_element(timeout)
                if el.name.space != NS_SASL:
                    raise SASLError(SASLCondition.MALFORMED_REQUEST, f"unexpected <{el.name.local}/> during SASL")
                local = el.name.local
                if local == "challenge":
                    try:
                        answer = mech.step(_read_payload(el.text))
                    except SASLError:
                        s.write_raw(_el("abort"))
                        raise
                    s.write_raw(
                        _el("response", _b64_payload(answer) or "="),
                        shown=_el("response", "[redacted]"),
                    )
                elif local == "success":
                    text = el.text.strip()
                    mech.finish(_read_payload(text) if text else None)
                    return int(SessionState.AUTHN), True
                elif local == "failure":
                    raise _failure_error(el)
                else:
                    raise SASLError(SASLCondition.MALFORMED_REQUEST, f"unexpected <{local}/> during SASL")
        finally:
            s._redact = False

    return StreamFeature(
        Name(NS_SASL, "mechanisms"),
        necessary=0,
        prohibited=int(SessionState.AUTHN),
        list=None,
        parse=parse,
        negotiate=negotiate,
    )


def sasl_server(
    store: CredentialStore,
    *,
    mechanisms: Sequence[str] | None = None,
    own_cert_der: bytes | None = None,
    max_attempts: int = 3,
    timeout: float = 30.0,
) -> StreamFeature:
    """The SASL stream feature, receiving side (a server authenticating clients).

    Advertises :func:`server_mechanisms` for the stream (PLAIN only over
    TLS; ``-PLUS`` with the binding types this connection has, announced per
    XEP-0440), restricted to ``mechanisms`` when given.  ``own_cert_der``
    (the DER of the server's certificate) enables ``tls-server-end-point``.
    On success ``session.remote_addr`` becomes the authenticated bare JID
    (``username@`` the session's domain); a client gets ``max_attempts``
    tries before the stream is closed with ``policy-violation``.
    """
    from xmpp.jid import JID
    from xmpp.negotiator import StreamFeature
    from xmpp.session import SessionState
    from xmpp.stream import Condition as StreamCondition
    from xmpp.stream import StreamError
    from xmpp.xmlstream import Attr, CharData, Name, StartElement

    mech_name = Name(NS_SASL, "mechanisms")

    def _bindings(session: Session) -> dict[str, bytes]:
        tls = session.tls
        if tls is None:
            return {}
        return available_bindings(tls, server_side=True, own_cert_der=own_cert_der)

    def _offer(session: Session) -> tuple[list[str], dict[str, bytes]]:
        bindings = _bindings(session)
        secure = bool(session.state & SessionState.SECURE)
        names = server_mechanisms(secure, bindings)
        if mechanisms is not None:
            names = [n for n in names if n in mechanisms]
        return names, bindings

    def list_(session: Session) -> tuple[bool, list[Any]]:
        # From now until SASL ends, what the client sends may hold secrets:
        # the XML console sees parsed, redacted elements instead of raw bytes.
        session._redact = True
        names, bindings = _offer(session)
        start = StartElement(mech_name)
        toks: list[Any] = [start]
        for n in names:
            m = StartElement(Name(NS_SASL, "mechanism"))
            toks += [m, CharData(n), m.end()]
        toks.append(start.end())
        if bindings and any(n.endswith(_PLUS) for n in names):
            cb = StartElement(Name(NS_SASL_CB, "sasl-channel-binding"))
            toks.append(cb)
            for t in sorted(bindings):
                c = StartElement(Name(NS_SASL_CB, "channel-binding"), [Attr(Name("", "type"), t)])
                toks += [c, c.end()]
            toks.append(cb.end())
        return True, toks

    async def negotiate(session: Session, data: Any) -> tuple[int, bool]:
        s: Any = session
        el = data
        attempts = 0
        s._redact = True
        try:
            while True:
                attempts += 1
                if el.name != Name(NS_SASL, "auth"):
                    raise StreamError(StreamCondition.POLICY_VIOLATION, "expected <auth/>")
                names, bindings = _offer(s)
                chosen = el.get("mechanism") or ""
                try:
                    if chosen not in names:
                        raise SASLError(SASLCondition.INVALID_MECHANISM, f"{chosen!r} is not offered here")
                    mech = server_mechanism(
                        chosen, store, bindings=bindings, offered_plus=any(n.endswith(_PLUS) for n in names)
                    )
                    text = el.text
                    challenge = await mech.step(_read_payload(text) if text.strip() else None)
                    while not mech.done:
                        s.write_raw(
                            _el("challenge", _b64_payload(challenge) or "="),
                            shown=_el("challenge", "[redacted]"),
                        )
                        reply = await s.read_element(timeout)
                        if reply.name == Name(NS_SASL, "abort"):
                            raise SASLError(SASLCondition.ABORTED, "the client aborted")
                        if reply.name != Name(NS_SASL, "response"):
                            raise SASLError(SASLCondition.MALFORMED_REQUEST, "expected <response/>")
                        challenge = await mech.step(_read_payload(reply.text))
                except SASLError as err:
                    cond = err.condition.value
                    s.write_raw(
                        ("<failure xmlns='" + NS_SASL + "'><" + cond + "/></failure>").encode()
                    )
                    if attempts >= max_attempts:
                        raise StreamError(StreamCondition.POLICY_VIOLATION, "too many failed authentication attempts") from None
                    el = await s.read_element(timeout)
                    continue
                local = s.local_addr
                domain = local.domain if local is not None else "localhost"
                s.remote_addr = JID(mech.username, domain, None)
                s.reset_input()
                payload = _b64_payload(mech.success_data)
                s.write_raw(
                    _el("success", payload), shown=_el("success", None if payload is None else "[redacted]")
                )
                return int(SessionState.AUTHN), True
        finally:
            s._redact = False

    return StreamFeature(
        mech_name,
        necessary=0,
        prohibited=int(SessionState.AUTHN),
        list=list_,
        parse=None,
        negotiate=negotiate,
    )
