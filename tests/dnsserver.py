"""A tiny DNS server for tests, on a loopback UDP port.

It answers from a table the test fills in, builds its answers with
:mod:`dns.message`, and remembers every question it was asked, so a test can
check what a resolver really sent.  It is only as much of a DNS server as the
dialing tests need: one zone of made-up names, UDP only, no recursion.

Usage::

    async with DNSServer() as server:
        server.add("_xmpp-client._tcp.example.org", "SRV", "10 0 5222 xmpp.example.org.")
        server.add("xmpp.example.org", "A", "127.0.0.1")
        server.servfail("broken.example.org")
        server.delay(None)              # from now on, never answer anything
        resolver = server.resolver()    # a dns.asyncresolver.Resolver aimed at it

A name with records of some type answers other types with no records
(NOERROR, an empty answer); a name the table does not know is NXDOMAIN.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from types import TracebackType

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["DNSServer"]


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text.rstrip(".") + ".")


@dataclasses.dataclass
class _Rule:
    """A delay or a forced response code for the questions it matches."""

    name: dns.name.Name | None  # None matches every name
    rdtype: dns.rdatatype.RdataType | None  # None matches every type
    delay: float | None = 0.0  # seconds before answering; None: never answer
    rcode: dns.rcode.Rcode | None = None

    def matches(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> bool:
        return (self.name is None or self.name == name) and (
            self.rdtype is None or self.rdtype == rdtype
        )


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own datagram transport does not always subclass
        # DatagramTransport (3.11 does not), so no isinstance check here.
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._received(data, addr)


class DNSServer:
    """A DNS server on ``127.0.0.1`` and an ephemeral UDP port, answering from a table.

    Fill the table with :meth:`add`, :meth:`nxdomain`, :meth:`servfail` and
    :meth:`delay`; read :attr:`queries` for the questions received, as
    ``(name, type)`` pairs of text (the name without its final dot).  Use it
    as an async context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.queries: list[tuple[str, str]] = []
        self._records: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        self._nxdomain: set[dns.name.Name] = set()
        self._rules: list[_Rule] = []
        self._protocol: _Protocol | None = None
        self._pending: set[asyncio.TimerHandle] = set()

    # -- the table ---------------------------------------------------------

    def add(self, name: str, rdtype: str, *rdatas: str, ttl: int = 60) -> None:
        """Add records of type ``rdtype`` (``"SRV"``, ``"A"``, ...) at ``name``.

        Each rdata is in zone file form, e.g. ``"10 5 5222 xmpp.example.org."``
        for SRV or ``"0 0 0 ."`` for "no service".
        """
        key = (_name(name), dns.rdatatype.from_text(rdtype))
        rrset = self._records.get(key)
        if rrset is None:
            rrset = dns.rrset.RRset(key[0], dns.rdataclass.IN, key[1])
            self._records[key] = rrset
        for rdata in rdatas:
            rrset.add(dns.rdata.from_text(dns.rdataclass.IN, key[1], rdata), ttl)
        self._nxdomain.discard(key[0])

    def nxdomain(self, name: str) -> None:
        """Make ``name`` answer NXDOMAIN for every type (also drops its records)."""
        target = _name(name)
        for key in [k for k in self._records if k[0] == target]:
            del self._records[key]
        self._nxdomain.add(target)

    def servfail(self, name: str | None = None, rdtype: str | None = None) -> None:
        """Answer SERVFAIL for ``name`` and ``rdtype`` (``None``: any)."""
        self.rcode(dns.rcode.SERVFAIL, name, rdtype)

    def rcode(self, rcode: dns.rcode.Rcode, name: str | None = None, rdtype: str | None = None) -> None:
        """Answer the response code ``rcode`` for ``name`` and ``rdtype`` (``None``: any)."""
        self._rules.insert(0, _Rule(*self._key(name, rdtype), rcode=rcode))

    def delay(self, seconds: float | None, name: str | None = None, rdtype: str | None = None) -> None:
        """Wait ``seconds`` before answering ``name``/``rdtype``; ``None`` never answers."""
        self._rules.insert(0, _Rule(*self._key(name, rdtype), delay=seconds))

    @staticmethod
    def _key(
        name: str | None, rdtype: str | None
    ) -> tuple[dns.name.Name | None, dns.rdatatype.RdataType | None]:
        return (
            None if name is None else _name(name),
            None if rdtype is None else dns.rdatatype.from_text(rdtype),
        )

    def asked(self, name: str, rdtype: str | None = None) -> bool:
        """Tell whether a question for ``name`` (of type ``rdtype``, if given) came in."""
        text = name.rstrip(".")
        return any(n == text and (rdtype is None or t == rdtype) for n, t in self.queries)

    def resolver(self, lifetime: float = 5.0) -> dns.asyncresolver.Resolver:
        """Return a resolver that asks this server and nothing else."""
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = lifetime
        resolver.timeout = lifetime
        return resolver

    # -- serving -----------------------------------------------------------

    def _answer(self, query: dns.message.Message) -> tuple[float | None, dns.message.Message]:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return 0.0, response
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        self.queries.append((name.to_text(omit_final_dot=True), dns.rdatatype.to_text(rdtype)))
        delay: float | None = 0.0
        for rule in self._rules:
            if rule.matches(name, rdtype) and rule.rcode is None:
                delay = rule.delay
                break
        for rule in self._rules:
            if rule.matches(name, rdtype) and rule.rcode is not None:
                response.set_rcode(rule.rcode)
                return delay, response
        rrset = self._records.get((name, rdtype))
        if rrset is not None:
            response.answer.append(rrset)
        elif name in self._nxdomain or not any(k[0] == name for k in self._records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return delay, response

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        delay, response = self._answer(query)
        if delay is None:
            return
        wire = response.to_wire()
        if delay <= 0:
            self._send(wire, addr)
            return
        loop = asyncio.get_running_loop()
        self._pending.add(loop.call_later(delay, self._send, wire, addr))

    def _send(self, wire: bytes, addr: tuple[str, int]) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.sendto(wire, addr)

    async def start(self) -> None:
        """Bind the UDP socket and start answering."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, 0)
        )
        self._protocol = protocol
        self.port = transport.get_extra_info("sockname")[1]

    async def close(self) -> None:
        """Stop answering and close the socket."""
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
            self._protocol.transport = None
            await asyncio.sleep(0)  # let the transport close its socket

    async def __aenter__(self) -> DNSServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
