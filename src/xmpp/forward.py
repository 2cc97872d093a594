"""Stanza Forwarding (XEP-0297): a stanza carried whole inside another.

``<forwarded xmlns='urn:xmpp:forward:0'>`` holds an optional
``<delay/>`` (XEP-0203: when the stanza was first sent) and the forwarded
stanza itself, in the ``jabber:client`` namespace.  Carbons (XEP-0280),
archives (XEP-0313) and MUC history use it.  :func:`wrap` builds one around
a stanza's tokens; :func:`unwrap` reads one back into a :class:`Forwarded`.

Unwrapping does not make a forwarded stanza trustworthy: whoever wrapped it
chose its ``from``.  Check who sent the wrapper (carbons: only the
account's own bare JID) before believing what is inside.

>>> from xmpp.xmlstream import Element, pretty
>>> from xmpp.stanza import Message
>>> from xmpp.jid import JID
>>> el = Element.from_tokens(wrap(Message(to=JID.parse("juliet@example.com"), id="1").wrap()))
>>> print(pretty(el))
<forwarded xmlns="urn:xmpp:forward:0">
  <message xmlns="jabber:client" to="juliet@example.com" id="1" type="normal"/>
</forwarded>
>>> unwrap(el).stanza.get("to")
'juliet@example.com'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from xmpp.delay import DELAY, Delay
from xmpp.stream import NS_CLIENT, NS_COMPONENT, NS_SERVER
from xmpp.xmlstream import Name, StartElement, Token

__all__ = ["FORWARDED", "NS", "Forwarded", "unwrap", "wrap"]


def _is(name: Any, want: Name) -> bool:
    """Whether ``name`` (of either engine) is ``want``."""
    return bool(name.local == want.local and name.space == want.space)

#: The namespace of XEP-0297.
NS = "urn:xmpp:forward:0"
#: The name of the ``<forwarded/>`` element.
FORWARDED = Name(NS, "forwarded")
_STANZA_NS = frozenset((NS_CLIENT, NS_SERVER, NS_COMPONENT))
_STANZAS = frozenset(("message", "presence", "iq"))


def wrap(stanza: Iterable[Token], delay: Delay | None = None) -> Iterator[Token]:
    """Yield the tokens of a ``<forwarded/>`` holding ``delay`` (if any) and
    ``stanza`` (the tokens of one whole stanza; a stanza dataclass's
    ``wrap()`` writes it in ``jabber:client``, as XEP-0297 asks)."""
    f = StartElement(FORWARDED)
    yield f
    if delay is not None:
        yield from delay.tokens()
    yield from stanza
    yield f.end()


@dataclasses.dataclass(frozen=True)
class Forwarded:
    """What a ``<forwarded/>`` holds: the forwarded ``stanza`` element and
    its ``delay`` (``None`` when there is none)."""

    stanza: Any
    delay: Delay | None = None

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<forwarded/>`` element again."""
        return wrap(self.stanza, self.delay)


def unwrap(el: Any) -> Forwarded:
    """Read a ``<forwarded/>`` element (either engine's).

    Returns the first child stanza (a message, presence or IQ in a stanza
    namespace) and the ``<delay/>``.  Raises ``ValueError`` if ``el`` is
    not a ``<forwarded/>``, holds no stanza, or holds a malformed delay.
    """
    if not _is(el.name, FORWARDED):
        raise ValueError(f"not a forwarded element: {el.name!r}")
    stanza = None
    delay = None
    for child in el.children():
        name = child.name
        if _is(name, DELAY) and delay is None:
            delay = Delay.from_element(child)
        elif stanza is None and name.space in _STANZA_NS and name.local in _STANZAS:
            stanza = child
    if stanza is None:
        raise ValueError("the forwarded element holds no stanza")
    return Forwarded(stanza, delay)
