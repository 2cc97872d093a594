"""XMPP Ping (XEP-0199): is the other side still there, and how far away is it?

:func:`send` pings an entity (a server, a client's full JID, a service) with
an IQ get and returns the round trip in seconds; an error reply raises its
:class:`~xmpp.stanza.StanzaError` (``service-unavailable`` means the entity
exists but does not implement pings, which still proves it is reachable).
:class:`Handler` answers pings; :func:`handle` registers it on a
:class:`~xmpp.mux.ServeMux`, which then lists ``urn:xmpp:ping`` among its
disco features.

>>> from xmpp.mux import ServeMux
>>> from xmpp.stream import NS_CLIENT
>>> mux = ServeMux(NS_CLIENT, handle())
>>> mux.disco_features()
['urn:xmpp:ping']

A ping from a served session (``session.serve`` must be running)::

    rtt = await xmpp.ping.send(session, "example.org", timeout=10)
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from typing import TYPE_CHECKING

from xmpp.jid import JID
from xmpp.session import DEFAULT_IQ_TIMEOUT
from xmpp.stanza import IQ, IQType
from xmpp.xmlstream import Element, Name, StartElement

if TYPE_CHECKING:
    from xmpp.mux import ServeMux
    from xmpp.session import Session

__all__ = ["NS", "PING", "Handler", "handle", "send"]

#: The namespace of XEP-0199, also its disco feature.
NS = "urn:xmpp:ping"
#: The name of the ``<ping/>`` payload.
PING = Name(NS, "ping")
_START = StartElement(PING)
_PAYLOAD = (_START, _START.end())


def _jid(to: JID | str | None) -> JID | None:
    if to is None or isinstance(to, JID):
        return to
    return JID.parse(to)


async def send(
    session: Session, to: JID | str | None = None, timeout: float | None = DEFAULT_IQ_TIMEOUT
) -> float:
    """Ping ``to`` (``None``: the server of the session) and return the round trip in seconds.

    The ping is an IQ get holding ``<ping xmlns='urn:xmpp:ping'/>``; a
    ``result`` answers it.  Raises the :class:`~xmpp.stanza.StanzaError` of
    an error reply, ``TimeoutError`` when no reply came within ``timeout``
    seconds, and ``RuntimeError`` if ``session.serve`` is not running (nobody
    would read the reply).  The time is measured with a monotonic clock,
    from just before sending to the arrival of the reply.
    """
    iq = IQ(to=_jid(to), type=IQType.GET)
    t0 = _time.perf_counter()
    await session.send_iq(iq, _PAYLOAD, timeout=timeout)
    return _time.perf_counter() - t0


class Handler:
    """Answers every ping with an empty ``result`` (XEP-0199 section 4).

    ``on_ping``, if given, is called with each ping IQ before it is answered
    (to note that the peer is alive, for example).  The handler declares the
    disco feature ``urn:xmpp:ping``.
    """

    #: The disco feature this handler implements (read by :class:`xmpp.mux.ServeMux`).
    disco_features = (NS,)

    def __init__(self, on_ping: Callable[[IQ], object] | None = None) -> None:
        """Make a handler; see the class documentation."""
        self.on_ping = on_ping

    async def handle_iq(self, iq: IQ, element: Element, session: Session) -> None:
        """Answer the ping ``iq`` (called by the mux for IQ gets with a ``<ping/>``)."""
        if self.on_ping is not None:
            self.on_ping(iq)
        await session.send(iq.result(None, session.stanza_ns))


def handle(handler: Handler | None = None) -> Callable[[ServeMux], None]:
    """A :class:`~xmpp.mux.ServeMux` option that answers pings with ``handler``
    (a new :class:`Handler` if ``None``)."""
    h = handler if handler is not None else Handler()

    def apply(mux: ServeMux) -> None:
        mux.iq(IQType.GET, PING, h)

    return apply


