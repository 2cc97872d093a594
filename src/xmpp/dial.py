"""Dialing: from an XMPP domain to a connected transport.

:func:`dial` turns a domain (``example.org``) into an open connection to one
of its XMPP servers, the way RFC 6120 section 3.2 and XEP-0368 describe:

1. **Service records.**  :func:`lookup` asks DNS for the SRV records of
   ``_xmpps-client._tcp.DOMAIN`` (direct TLS, XEP-0368) and
   ``_xmpp-client._tcp.DOMAIN`` (STARTTLS, RFC 6120) at once, or of the
   ``-server`` pair for server-to-server connections, and orders the
   :class:`Target` values it finds (see *Ordering* below).
2. **Addresses.**  :func:`resolve_host` asks for the AAAA and A records of a
   target host at once, with the same resolver.  IP literals are used as they
   are, and ``localhost`` is ``::1`` and ``127.0.0.1`` without asking DNS.
3. **Connecting.**  The addresses of a target are raced in the manner of
   RFC 8305 ("happy eyeballs", simplified): IPv6 and IPv4 addresses are
   interleaved, IPv6 first; the first attempt starts at once, and each next
   one starts when the one before it failed or after ``happy_eyeballs_delay``
   seconds, whichever comes first; the first socket to connect wins and every
   other attempt is cancelled and its socket closed.  The race runs over
   non-blocking sockets (:meth:`asyncio.loop.sock_connect`), so it needs
   nothing from the system resolver.
4. **TLS.**  A direct TLS target is wrapped in TLS from the first byte.  The
   certificate is checked against the *XMPP domain*, not against the host
   name of the SRV target (RFC 6120 section 13.7.2.1, RFC 6125, XEP-0368),
   and the domain is sent as SNI.  Without a context of the caller's,
   :func:`default_tls_context` is used: certificate and host name
   verification on, ALPN ``xmpp-client`` (or ``xmpp-server``).  A STARTTLS
   target is returned as a plain TCP transport; upgrading it is the stream
   negotiation's job.

If a target cannot be reached (no address, every address refused or timed
out, a failed TLS handshake), the next target is tried.  When none is left,
:class:`DialError` lists every target with what went wrong with it.  The
whole of :func:`dial` is bounded by its ``timeout``; running out of time
raises :class:`DialTimeoutError`, which is both a :class:`DialError` and a
:class:`TimeoutError`.

Ordering
--------
Records are ordered as RFC 2782 says: lowest priority first; among records
of one priority, by repeated weighted random selection, where a record of
weight zero has a small chance of coming first and records that all weigh
zero come in random order.  XEP-0368 lets the direct TLS and STARTTLS records
mix as one set and allows a client to prefer one kind over the other; this
module prefers direct TLS within a priority: at each priority the direct TLS
targets come first (in weighted order among themselves), then the STARTTLS
targets (likewise).  A lower priority always wins over the kind of record.

No service, no records, and errors
----------------------------------
* A lone SRV record whose target is ``.`` says the service is decidedly not
  offered at the domain (RFC 2782).  Such a service contributes no target.
  It still counts as an answer: there is no fallback to the domain itself
  (XEP-0368 section 5), so if both services say ``.``, or one says ``.`` and
  the other has no records, :func:`lookup` returns an empty list and
  :func:`dial` raises :class:`DialError`.
* If neither query returns any record (NXDOMAIN, or no SRV records at the
  name), the target is the domain itself on port 5222 (5269 for servers)
  with STARTTLS (RFC 6120 section 3.2.2).
* Errors other than "no such record" (a timeout, SERVFAIL, a refused query)
  are logged as warnings on the ``xmpp.dial`` logger and remembered: if no
  usable answer came back from either query, the fallback to the domain is
  used as well, because RFC 6120 section 3.2.1 step 8 says to fall back when
  the SRV query gets no response.  If the dial then fails, the
  :class:`DialError` lists the DNS errors beside the connection errors.
* If SRV records were found but none of their targets can be reached, the
  domain itself is *not* tried (RFC 6120 section 3.2.1 step 7).

Example::

    transport, protocol, target = await dial("example.org", MyProtocol)
    if not target.direct_tls:
        ...  # negotiate STARTTLS on the stream
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import random
import socket
import ssl
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

__all__ = [
    "DEFAULT_PORTS",
    "DialError",
    "DialTimeoutError",
    "Target",
    "default_tls_context",
    "dial",
    "lookup",
    "order_srv",
    "resolve_host",
]

_log = logging.getLogger(__name__)

#: The port of each service when DNS has no SRV records for a domain
#: (RFC 6120 section 3.2.2 and 3.2.3).
DEFAULT_PORTS: dict[str, int] = {"xmpp-client": 5222, "xmpp-server": 5269}

# The time a single DNS query may take when no timeout is given.
_DNS_LIFETIME = 10.0

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

# The generator behind the weighted order when the caller gives none.
_RNG = random.Random()


@dataclasses.dataclass(frozen=True)
class Target:
    """One place to connect to: a host name or IP literal and a port.

    ``direct_tls`` is true for a target from an ``_xmpps-*`` SRV record
    (XEP-0368): TLS starts with the first byte.  Otherwise the connection
    starts in the clear and the stream negotiates STARTTLS.  ``priority`` and
    ``weight`` are those of the SRV record the target came from (both zero
    for the fallback to the domain itself and for an explicit host).
    """

    host: str
    port: int
    direct_tls: bool = False
    priority: int = 0
    weight: int = 0

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        kind = "direct TLS" if self.direct_tls else "STARTTLS"
        return f"{host}:{self.port} ({kind})"


class DialError(OSError):
    """No connection could be made; ``errors`` says what happened where.

    ``errors`` is a tuple of ``(where, exception)`` pairs in the order they
    happened, where ``where`` is the :class:`Target` (or address) a connection
    attempt failed for, or a string naming a DNS query that failed.  The
    message of the exception lists them all, one per line.
    """

    def __init__(
        self,
        message: str,
        errors: Iterable[tuple[Target | str, BaseException]] = (),
    ) -> None:
        self.errors: tuple[tuple[Target | str, BaseException], ...] = tuple(errors)
        lines = [message]
        for where, exc in self.errors:
            detail = (str(exc) or type(exc).__name__).replace("\n", "\n  ")
            lines.append(f"  {where}: {type(exc).__name__}: {detail}")
        super().__init__("\n".join(lines))


class DialTimeoutError(DialError, TimeoutError):
    """:func:`dial` ran out of time; ``errors`` holds what failed before that.

    It is a :class:`TimeoutError` as well, so either ``except`` clause
    catches it.
    """


class _Weighted(Protocol):
    """Anything with an SRV priority and weight (a :class:`Target`, an SRV rdata)."""

    @property
    def priority(self) -> int: ...

    @property
    def weight(self) -> int: ...


_W = TypeVar("_W", bound=_Weighted)


def _weighted_order(group: Sequence[_W], rng: random.Random) -> list[_W]:
    # RFC 2782, "Usage rules": arrange the records with weight zero first,
    # the others in any order (here: a random one), take a uniform integer r
    # in [0, sum of weights] and select the first record whose running sum of
    # weights is >= r; repeat with the records not yet selected.
    pool = list(group)
    rng.shuffle(pool)
    pool.sort(key=lambda record: record.weight != 0)  # stable: zeros first
    ordered: list[_W] = []
    while pool:
        total = sum(record.weight for record in pool)
        r = rng.randint(0, total)
        running = 0
        for index, record in enumerate(pool):
            running += record.weight
            if running >= r:
                ordered.append(pool.pop(index))
                break
    return ordered


def order_srv(records: Iterable[_W], rng: random.Random | None = None) -> list[_W]:
    """Return ``records`` in the order RFC 2782 says to try them.

    Lower priorities come first.  Within a priority, records are picked one
    after another by weighted random selection: a record's chance of being
    picked next is proportional to its weight, and a record of weight zero
    has a small chance (``1 / (total weight + 1)``) of coming first.  ``rng``
    supplies the randomness (a seeded :class:`random.Random` makes the order
    reproducible); by default the module's shared generator is used.
    """
    chooser = rng if rng is not None else _RNG
    by_priority: dict[int, list[_W]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[_W] = []
    for priority in sorted(by_priority):
        ordered.extend(_weighted_order(by_priority[priority], chooser))
    return ordered


def default_tls_context(service: str = "xmpp-client") -> ssl.SSLContext:
    """Return a new client TLS context for direct TLS connections to ``service``.

    It is :func:`ssl.create_default_context` (the system's trusted
    certificates, certificate and host name verification on) with the ALPN
    protocol of XEP-0368 set: ``xmpp-client`` or ``xmpp-server``.  To trust
    another CA, call ``load_verify_locations`` on the result.  :func:`dial`
    never changes a context the caller passes; a caller's own context should
    set the ALPN protocol the same way (``ctx.set_alpn_protocols([service])``).
    """
    _check_service(service)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols([service])
    return context


def _check_service(service: str) -> None:
    if service not in DEFAULT_PORTS:
        raise ValueError(f"service must be 'xmpp-client' or 'xmpp-server', not {service!r}")


def _ip_literal(host: str) -> str | None:
    """Return the address if ``host`` is an IP literal (IPv6 may be in brackets)."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _is_localhost(host: str) -> bool:
    return host.rstrip(".").lower() == "localhost"


def _dns_name(host: str) -> dns.name.Name:
    """The absolute DNS name of ``host`` (internationalized names become A-labels)."""
    try:
        return dns.name.from_text(host.rstrip(".") + ".")
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise ValueError(f"not a valid domain name: {host!r}: {exc}") from exc


def _tls_hostname(domain: str) -> str:
    """The name a certificate is checked against and sent as SNI: the XMPP domain."""
    literal = _ip_literal(domain)
    if literal is not None:
        return literal
    if domain.isascii():
        return domain.rstrip(".").lower()
    return _dns_name(domain).to_text(omit_final_dot=True)


def _resolver(resolver: dns.asyncresolver.Resolver | None) -> dns.asyncresolver.Resolver:
    return resolver if resolver is not None else dns.asyncresolver.get_default_resolver()


async def _resolve(
    resolver: dns.asyncresolver.Resolver,
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    lifetime: float,
) -> dns.resolver.Answer:
    # dnspython may pass its lifetime by a back-off pause; hold it to it.
    try:
        return await asyncio.wait_for(resolver.resolve(name, rdtype, lifetime=lifetime), lifetime)
    except asyncio.TimeoutError:
        what = f"{name.to_text(omit_final_dot=True)} {dns.rdatatype.to_text(rdtype)}"
        raise TimeoutError(f"no DNS answer for {what} in {lifetime:.3g} s") from None


@dataclasses.dataclass
class _SRVAnswer:
    """What one SRV query said."""

    name: str
    targets: list[Target] = dataclasses.field(default_factory=list)
    no_service: bool = False  # a lone "." record
    found: bool = False  # any record at all, "." included
    error: BaseException | None = None  # anything but "no such record"


async def _query_srv(
    resolver: dns.asyncresolver.Resolver,
    name: dns.name.Name,
    *,
    direct_tls: bool,
    lifetime: float,
) -> _SRVAnswer:
    result = _SRVAnswer(name.to_text(omit_final_dot=True))
    try:
        answer = await _resolve(resolver, name, dns.rdatatype.SRV, lifetime)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return result
    except (dns.exception.DNSException, TimeoutError) as exc:
        result.error = exc
        return result
    records = list(answer)
    result.found = bool(records)
    if len(records) == 1 and records[0].target == dns.name.root:
        result.no_service = True
        return result
    for record in records:
        if record.target == dns.name.root:
            continue  # "." among real records means nothing; skip it
        result.targets.append(
            Target(
                host=record.target.to_text(omit_final_dot=True),
                port=int(record.port),
                direct_tls=direct_tls,
                priority=int(record.priority),
                weight=int(record.weight),
            )
        )
    return result


async def _lookup(
    domain: str,
    *,
    service: str,
    resolver: dns.asyncresolver.Resolver | None,
    timeout: float,
    rng: random.Random | None,
) -> tuple[list[Target], list[tuple[Target | str, BaseException]]]:
    """Look up the targets of ``domain`` and the DNS errors met on the way."""
    _check_service(service)
    port = DEFAULT_PORTS[service]
    literal = _ip_literal(domain)
    if literal is not None:
        return [Target(literal, port)], []
    if _is_localhost(domain):
        return [Target("localhost", port)], []
    origin = _dns_name(domain)
    res = _resolver(resolver)
    kind = service.split("-", 1)[1]  # "client" or "server"
    direct, starttls = await asyncio.gather(
        _query_srv(
            res,
            dns.name.from_text(f"_xmpps-{kind}._tcp", origin),
            direct_tls=True,
            lifetime=timeout,
        ),
        _query_srv(
            res,
            dns.name.from_text(f"_xmpp-{kind}._tcp", origin),
            direct_tls=False,
            lifetime=timeout,
        ),
    )
    errors: list[tuple[Target | str, BaseException]] = []
    for answer in (direct, starttls):
        if answer.error is not None:
            _log.warning("SRV query for %s failed: %s", answer.name, answer.error)
            errors.append((f"SRV {answer.name}", answer.error))
    if not direct.found and not starttls.found:
        # No records at all (or no answer at all): RFC 6120 section 3.2.2.
        fallback = domain.rstrip(".")
        return [Target(fallback, port)], errors
    chooser = rng if rng is not None else _RNG
    ordered: list[Target] = []
    priorities = sorted({t.priority for t in direct.targets + starttls.targets})
    for priority in priorities:
        for answer in (direct, starttls):  # direct TLS first within a priority
            group = [t for t in answer.targets if t.priority == priority]
            ordered.extend(_weighted_order(group, chooser))
    return ordered, errors


async def lookup(
    domain: str,
    *,
    service: str = "xmpp-client",
    resolver: dns.asyncresolver.Resolver | None = None,
    timeout: float = _DNS_LIFETIME,
    rng: random.Random | None = None,
) -> list[Target]:
    """Return the targets to try for ``service`` at ``domain``, in order.

    ``service`` is ``"xmpp-client"`` (queries ``_xmpps-client._tcp`` and
    ``_xmpp-client._tcp``) or ``"xmpp-server"`` (``_xmpps-server._tcp`` and
    ``_xmpp-server._tcp``); both queries run at once.  The order, the meaning
    of a ``.`` target, the fallback to the domain itself on port 5222 (5269)
    and the handling of DNS errors are described in the module documentation.
    An empty list means the domain says the service is not offered.

    ``resolver`` defaults to dnspython's default resolver (the system's
    configuration); ``timeout`` bounds each DNS query, in seconds; ``rng``
    supplies the randomness of the weighted order.  An IP literal (an IPv6
    one may be in brackets) or ``localhost`` is its own target without any
    DNS query.  A domain that is not a valid DNS name raises
    :class:`ValueError`.
    """
    targets, _ = await _lookup(
        domain, service=service, resolver=resolver, timeout=timeout, rng=rng
    )
    return targets


def _interleave(v6: Sequence[str], v4: Sequence[str]) -> list[str]:
    """IPv6 and IPv4 addresses alternating, IPv6 first (RFC 8305 section 4)."""
    out: list[str] = []
    for index in range(max(len(v6), len(v4))):
        if index < len(v6):
            out.append(v6[index])
        if index < len(v4):
            out.append(v4[index])
    return out


async def _query_addresses(
    resolver: dns.asyncresolver.Resolver,
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    lifetime: float,
) -> list[str]:
    try:
        answer = await _resolve(resolver, name, rdtype, lifetime)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    seen: list[str] = []
    for record in answer:
        address = str(record.address)
        if address not in seen:
            seen.append(address)
    return seen


async def resolve_host(
    host: str,
    *,
    resolver: dns.asyncresolver.Resolver | None = None,
    timeout: float = _DNS_LIFETIME,
) -> list[str]:
    """Return the IP addresses of ``host`` in the order to try them.

    The AAAA and A queries run at once with ``resolver`` (dnspython's default
    resolver if ``None``), each bounded by ``timeout`` seconds; the addresses
    come back interleaved, IPv6 first.  If one query fails and the other
    gives addresses, those are used (the failure is logged).  An IP literal
    is returned as it is (without brackets) and ``localhost`` is
    ``["::1", "127.0.0.1"]``; neither asks DNS.  When there is no address at
    all, :class:`DialError` says what each query returned.
    """
    literal = _ip_literal(host)
    if literal is not None:
        return [literal]
    if _is_localhost(host):
        return ["::1", "127.0.0.1"]
    name = _dns_name(host)
    res = _resolver(resolver)
    results = await asyncio.gather(
        _query_addresses(res, name, dns.rdatatype.AAAA, timeout),
        _query_addresses(res, name, dns.rdatatype.A, timeout),
        return_exceptions=True,
    )
    lists: list[list[str]] = []
    errors: list[tuple[Target | str, BaseException]] = []
    for label, result in zip(("AAAA", "A"), results):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result  # cancellation and the like pass through
            errors.append((f"{label} {host}", result))
            lists.append([])
        else:
            lists.append(result)
    v6, v4 = lists
    if not v6 and not v4:
        raise DialError(f"no IP address for {host}", errors)
    for where, exc in errors:
        _log.warning("%s query failed, using the other family: %s", where, exc)
    return _interleave(v6, v4)


async def _attempt(loop: asyncio.AbstractEventLoop, address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _close_result(task: asyncio.Task[socket.socket]) -> None:
    if task.done() and not task.cancelled() and task.exception() is None:
        task.result().close()


async def _happy_eyeballs(addresses: Sequence[str], port: int, delay: float) -> socket.socket:
    """Race connections to ``addresses`` (already interleaved); return the winner."""
    loop = asyncio.get_running_loop()
    waiting = list(addresses)
    running: dict[asyncio.Task[socket.socket], str] = {}
    errors: list[tuple[Target | str, BaseException]] = []
    winner: socket.socket | None = None

    def start_next() -> None:
        address = waiting.pop(0)
        running[loop.create_task(_attempt(loop, address, port))] = address

    try:
        start_next()
        while running:
            done, _ = await asyncio.wait(
                running,
                timeout=delay if waiting else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:  # the delay passed: start the next attempt beside it
                start_next()
                continue
            failed = False
            for task in done:
                address = running.pop(task)
                exc = task.exception()
                if exc is None and winner is None:
                    winner = task.result()
                elif exc is None:
                    task.result().close()  # a second winner in the same turn
                else:
                    shown = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
                    errors.append((shown, exc))
                    failed = True
            if winner is not None:
                return winner
            if failed and waiting:  # a failure starts the next attempt now
                start_next()
        raise DialError("every address failed", errors)
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
            for task in running:
                _close_result(task)


async def _connect_target(
    target: Target,
    protocol_factory: Callable[[], _P],
    *,
    domain: str,
    service: str,
    tls_context: ssl.SSLContext | None,
    resolver: dns.asyncresolver.Resolver | None,
    dns_timeout: float,
    happy_eyeballs_delay: float,
) -> tuple[asyncio.Transport, _P]:
    addresses = await resolve_host(target.host, resolver=resolver, timeout=dns_timeout)
    sock = await _happy_eyeballs(addresses, target.port, happy_eyeballs_delay)
    loop = asyncio.get_running_loop()
    try:
        if target.direct_tls:
            context = tls_context if tls_context is not None else default_tls_context(service)
            return await loop.create_connection(
                protocol_factory,
                sock=sock,
                ssl=context,
                server_hostname=_tls_hostname(domain),
            )
        return await loop.create_connection(protocol_factory, sock=sock)
    except BaseException:
        # asyncio closes the transport it made around the socket, but only
        # on a later turn of the loop; close the socket itself now.
        sock.close()
        raise


async def dial(
    domain: str,
    protocol_factory: Callable[[], _P],
    *,
    service: str = "xmpp-client",
    host: str | None = None,
    port: int | None = None,
    direct_tls: bool | None = None,
    tls_context: ssl.SSLContext | None = None,
    resolver: dns.asyncresolver.Resolver | None = None,
    timeout: float = 30.0,
    happy_eyeballs_delay: float = 0.25,
    rng: random.Random | None = None,
) -> tuple[asyncio.Transport, _P, Target]:
    """Connect to the XMPP service of ``domain``; return the transport, protocol and target.

    Without ``host`` and ``port``, the targets come from :func:`lookup` and
    are tried in order; each target's addresses are raced (happy eyeballs,
    a new attempt every ``happy_eyeballs_delay`` seconds or as soon as the
    previous one failed).  ``direct_tls`` then selects only the direct TLS
    (``True``) or only the STARTTLS (``False``) targets; ``None`` takes both.

    With ``host`` or ``port``, DNS SRV is skipped: the one target is
    ``host`` (default: the domain) on ``port`` (default: 5222 for
    ``"xmpp-client"``, 5269 for ``"xmpp-server"``), with STARTTLS unless
    ``direct_tls`` is true, in which case ``port`` must be given.

    A direct TLS connection is made with ``tls_context`` (default:
    :func:`default_tls_context` for ``service``, which verifies the
    certificate); the certificate must be valid for ``domain``, which is also
    sent as SNI, whatever host the target names.  Turning verification off
    is up to the caller, with a context of their own.

    ``resolver`` and ``rng`` are passed on to :func:`lookup` (and the
    resolver to :func:`resolve_host`).  ``protocol_factory`` makes the
    :class:`asyncio.Protocol` of the connection, as in
    :meth:`asyncio.loop.create_connection`.  The returned
    :class:`Target` tells the caller whether TLS is already on
    (``target.direct_tls``) or STARTTLS is to be negotiated.

    Everything, DNS included, is bounded by ``timeout`` seconds
    (:class:`DialTimeoutError`); each DNS query may take a third of it, at
    most 10 seconds, so a DNS server that does not answer shows up as DNS
    timeouts in a :class:`DialError` while there is time left.  When no
    target can be reached, :class:`DialError` lists each target and its
    error; DNS errors met on the way are listed too.  A bad ``service`` or
    domain raises :class:`ValueError`.
    """
    _check_service(service)
    if direct_tls and port is None and host is not None:
        raise ValueError("direct_tls with an explicit host needs an explicit port")
    errors: list[tuple[Target | str, BaseException]] = []
    stage = [f"looking up {domain}"]
    # A third of the budget per DNS stage (SRV, then addresses), so that a
    # server that never answers ends in a DialError naming the queries, with
    # time left to say so, rather than in a bare timeout.
    dns_timeout = min(timeout / 3, _DNS_LIFETIME)

    async def run() -> tuple[asyncio.Transport, _P, Target]:
        if host is not None or port is not None:
            name = host if host is not None else domain.rstrip(".")
            targets = [
                Target(
                    _ip_literal(name) or name,
                    port if port is not None else DEFAULT_PORTS[service],
                    bool(direct_tls),
                )
            ]
        else:
            targets, dns_errors = await _lookup(
                domain, service=service, resolver=resolver, timeout=dns_timeout, rng=rng
            )
            errors.extend(dns_errors)
            if not targets:
                raise DialError(
                    f"{domain} does not offer {service} (SRV target '.')", errors
                )
            if direct_tls is not None:
                targets = [t for t in targets if t.direct_tls == direct_tls]
                if not targets:
                    kind = "direct TLS" if direct_tls else "STARTTLS"
                    raise DialError(f"{domain} has no {kind} target for {service}", errors)
        # One default context for every direct TLS target of this dial.
        context = tls_context
        if context is None and any(t.direct_tls for t in targets):
            context = default_tls_context(service)
        for target in targets:
            stage[0] = f"connecting to {target}"
            try:
                transport, protocol = await _connect_target(
                    target,
                    protocol_factory,
                    domain=domain,
                    service=service,
                    tls_context=context,
                    resolver=resolver,
                    dns_timeout=dns_timeout,
                    happy_eyeballs_delay=happy_eyeballs_delay,
                )
            except OSError as exc:  # DialError, refused, TLS errors, ...
                errors.append((target, exc))
                continue
            return transport, protocol, target
        raise DialError(f"cannot connect to {service} at {domain}", errors)

    if sys.version_info >= (3, 11):
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await run()
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise DialTimeoutError(
                f"dialing {domain} timed out after {timeout} s while {stage[0]}", errors
            ) from exc
    else:
        try:
            return await asyncio.wait_for(run(), timeout)
        except asyncio.TimeoutError as exc:
            raise DialTimeoutError(
                f"dialing {domain} timed out after {timeout} s while {stage[0]}", errors
            ) from exc
