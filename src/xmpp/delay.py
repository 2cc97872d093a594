"""Delayed Delivery (XEP-0203): when a stanza was really sent.

A stanza delivered late (from offline storage, a forwarded copy, a MUC's
history) carries ``<delay xmlns='urn:xmpp:delay' stamp='...' from='...'>``
giving the original time (XEP-0082 DateTime, in UTC), optionally who
delayed it and why.  :class:`Delay` builds and reads it; :func:`find` reads
the delay of a received stanza, and :func:`insert` adds one to a stanza's
tokens.

>>> import datetime
>>> d = Delay(datetime.datetime(2002, 9, 10, 23, 8, 25, tzinfo=datetime.timezone.utc), reason="Offline Storage")
>>> d.start().get("stamp")
'2002-09-10T23:08:25Z'
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterable, Iterator
from typing import Any

from xmpp.jid import JID, JIDError
from xmpp.time import format_datetime, parse_datetime
from xmpp.xmlstream import Attr, CharData, Name, StartElement, Token

__all__ = ["DELAY", "NS", "Delay", "find", "insert"]


def _is(name: Any, want: Name) -> bool:
    """Whether ``name`` (of either engine) is ``want``."""
    return bool(name.local == want.local and name.space == want.space)

#: The namespace of XEP-0203.
NS = "urn:xmpp:delay"
#: The name of the ``<delay/>`` element.
DELAY = Name(NS, "delay")


@dataclasses.dataclass(frozen=True)
class Delay:
    """A ``<delay/>``: ``stamp`` (an aware datetime: when the stanza was
    first sent), ``from_`` (the entity that delayed it, or ``None``) and a
    ``reason`` (``""`` for none)."""

    stamp: _dt.datetime
    from_: JID | None = None
    reason: str = ""

    def start(self) -> StartElement:
        """Return the ``<delay/>`` start element (``ValueError`` for a naive ``stamp``)."""
        attrs = []
        if self.from_ is not None:
            attrs.append(Attr(Name("", "from"), str(self.from_)))
        attrs.append(Attr(Name("", "stamp"), format_datetime(self.stamp)))
        return StartElement(DELAY, attrs)

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<delay/>`` element."""
        s = self.start()
        yield s
        if self.reason:
            yield CharData(self.reason)
        yield s.end()

    def __iter__(self) -> Iterator[Token]:
        """Yield the tokens of the ``<delay/>`` element (a token reader)."""
        return self.tokens()

    @classmethod
    def from_element(cls, el: Any) -> Delay:
        """Read a ``<delay/>`` element; ``ValueError`` if it is not one or
        its ``stamp`` or ``from`` is missing or malformed."""
        if not _is(el.name, DELAY):
            raise ValueError(f"not a delay element: {el.name!r}")
        stamp = el.get("stamp")
        if stamp is None:
            raise ValueError("a delay needs a stamp")
        frm = el.get("from")
        try:
            jid = None if frm is None else JID.parse(frm)
        except JIDError as exc:
            raise ValueError(f"malformed delay from {frm!r}: {exc}") from None
        return cls(parse_datetime(stamp), jid, el.text)


def find(stanza: Any) -> Delay | None:
    """The first well-formed ``<delay/>`` child of a received stanza (or of
    a ``<forwarded/>``), or ``None``."""
    for child in stanza.children():
        if _is(child.name, DELAY):
            try:
                return Delay.from_element(child)
            except ValueError:
                continue
    return None


def insert(stanza: Iterable[Token], delay: Delay) -> Iterator[Token]:
    """Yield the tokens of ``stanza`` (one whole element) with ``delay`` as its last child."""
    depth = 0
    for tok in stanza:
        kind = tok.__class__.__name__  # either engine's tokens
        if kind == "StartElement":
            depth += 1
        elif kind == "EndElement":
            depth -= 1
            if depth == 0:
                yield from delay.tokens()
        yield tok
