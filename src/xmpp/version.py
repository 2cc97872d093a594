"""Software Version (XEP-0092): which software, which version, on which system.

:func:`get` asks an entity; :class:`Handler` answers for us; :func:`handle`
registers it (the mux then lists ``jabber:iq:version`` among its disco
features).  The operating system is optional and left out by default,
since XEP-0092 section 5 notes that disclosing it helps attackers.

>>> v = Version("xmpp-bot", "1.0")
>>> [t.name.local for t in v.tokens() if hasattr(t, "attrs")]
['query', 'name', 'version']

Asking (``session.serve`` must be running)::

    v = await xmpp.version.get(session, "example.org")
    print(v.name, v.version)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from xmpp.jid import JID
from xmpp.session import DEFAULT_IQ_TIMEOUT
from xmpp.stanza import IQ, IQType
from xmpp.xmlstream import CharData, Element, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.mux import ServeMux
    from xmpp.session import Session

__all__ = ["NS", "QUERY", "Handler", "Version", "get", "handle"]


def _is(name: Any, want: Name) -> bool:
    """Whether ``name`` (of either engine) is ``want``."""
    return bool(name.local == want.local and name.space == want.space)

#: The namespace of XEP-0092 (also its disco feature).
NS = "jabber:iq:version"
#: The name of the ``<query/>`` payload.
QUERY = Name(NS, "query")


@dataclasses.dataclass(frozen=True)
class Version:
    """The answer of XEP-0092: the software's ``name`` and ``version`` and,
    optionally, the operating system ``os`` (``""`` for none)."""

    name: str
    version: str
    os: str = ""

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<query xmlns='jabber:iq:version'/>`` answer."""
        q = StartElement(QUERY)
        yield q
        for local, text in (("name", self.name), ("version", self.version), ("os", self.os)):
            if text:
                s = StartElement(Name(NS, local))
                yield s
                yield CharData(text)
                yield s.end()
        yield q.end()

    @classmethod
    def from_element(cls, el: Any) -> Version:
        """Read a ``<query/>`` answer (missing children read as ``""``);
        ``ValueError`` if ``el`` is not one."""
        if not _is(el.name, QUERY):
            raise ValueError(f"not a software version query: {el.name!r}")

        def text(local: str) -> str:
            child = el.find(local, NS)
            return "" if child is None else str(child.text)

        return cls(text("name"), text("version"), text("os"))


def _jid(to: JID | str | None) -> JID | None:
    if to is None or isinstance(to, JID):
        return to
    return JID.parse(to)


async def get(
    session: Session, to: JID | str | None, *, timeout: float | None = DEFAULT_IQ_TIMEOUT
) -> Version:
    """Ask ``to`` (``None``: the session's server) which software it runs.

    Raises the :class:`~xmpp.stanza.StanzaError` of an error reply (such as
    ``service-unavailable`` when the entity does not say), and
    ``TimeoutError``/``RuntimeError`` as
    :meth:`xmpp.session.Session.send_iq` does.
    """
    q = StartElement(QUERY)
    reply = await session.send_iq(IQ(to=_jid(to), type=IQType.GET), (q, q.end()), timeout=timeout)
    found = reply.find("query", NS)
    return Version("", "") if found is None else Version.from_element(found)


class Handler:
    """Answers software version queries with ``version``."""

    #: The disco feature this handler implements (read by the mux).
    disco_features = (NS,)

    def __init__(self, version: Version) -> None:
        """Answer with ``version``."""
        self.version = version

    async def handle_iq(self, iq: IQ, element: Element, session: Session) -> None:
        """Answer one query (called by the mux for IQ gets of ``jabber:iq:version``)."""
        await session.send(iq.result(self.version.tokens(), session.stanza_ns))


def handle(name: str, version: str, os: str = "") -> Callable[[ServeMux], None]:
    """A :class:`~xmpp.mux.ServeMux` option answering version queries with
    ``Version(name, version, os)``."""
    h = Handler(Version(name, version, os))

    def apply(mux: ServeMux) -> None:
        mux.iq(IQType.GET, QUERY, h)

    return apply
