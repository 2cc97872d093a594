"""Entity Time (XEP-0202) and the XMPP date and time profiles (XEP-0082).

The profiles of XEP-0082 (subsets of ISO 8601) as functions:

* DateTime ``CCYY-MM-DDThh:mm:ss[.sss]TZD``: :func:`format_datetime`,
  :func:`parse_datetime`;
* Date ``CCYY-MM-DD``: :func:`format_date`, :func:`parse_date`;
* Time ``hh:mm:ss[.sss][TZD]``: :func:`format_time`, :func:`parse_time`;
* the time zone definition ``Z`` or ``+hh:mm``/``-hh:mm``:
  :func:`format_tzo`, :func:`parse_tzo`.

XEP-0202 asks an entity for its clock: :func:`get` returns an
:class:`EntityTime` (UTC time and the entity's offset from UTC);
:class:`Handler` answers with ours and :func:`handle` registers it.

>>> import datetime
>>> t = parse_datetime("1969-07-21T02:56:15.123-04:00")
>>> format_datetime(t)
'1969-07-21T06:56:15.123Z'
>>> format_tzo(datetime.timedelta(hours=-6))
'-06:00'
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from xmpp.jid import JID
from xmpp.session import DEFAULT_IQ_TIMEOUT
from xmpp.stanza import IQ, IQType
from xmpp.xmlstream import CharData, Element, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.mux import ServeMux
    from xmpp.session import Session

__all__ = [
    "NS",
    "TIME",
    "EntityTime",
    "Handler",
    "format_date",
    "format_datetime",
    "format_time",
    "format_tzo",
    "get",
    "handle",
    "parse_date",
    "parse_datetime",
    "parse_time",
    "parse_tzo",
]


def _is(name: Any, want: Name) -> bool:
    """Whether ``name`` (of either engine) is ``want``."""
    return bool(name.local == want.local and name.space == want.space)

#: The namespace of XEP-0202 (also its disco feature).
NS = "urn:xmpp:time"
#: The name of the ``<time/>`` payload.
TIME = Name(NS, "time")

_TZD = r"(?P<tzd>Z|[+-]\d{2}:\d{2})"
_TIME = r"(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})(?:\.(?P<frac>\d+))?"
_DATE = r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
_DATETIME_RE = re.compile(_DATE + "T" + _TIME + _TZD, re.ASCII)
_DATE_RE = re.compile(_DATE, re.ASCII)
_TIME_RE = re.compile(_TIME + _TZD + "?", re.ASCII)
_TZO_RE = re.compile(r"(?P<sign>[+-])(?P<h>\d{2}):(?P<m>\d{2})", re.ASCII)


def format_tzo(offset: _dt.timedelta) -> str:
    """The offset ``offset`` as ``+hh:mm`` or ``-hh:mm`` (whole minutes;
    ``ValueError`` otherwise or beyond 24 hours)."""
    total = offset.total_seconds()
    if total % 60 or abs(total) >= 24 * 3600:
        raise ValueError(f"not a time zone offset: {offset!r}")
    minutes = int(abs(total)) // 60
    return f"{'-' if total < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_tzo(s: str) -> _dt.timedelta:
    """Read a time zone definition: ``Z`` or ``+hh:mm``/``-hh:mm``
    (``ValueError`` for anything else)."""
    if s == "Z":
        return _dt.timedelta(0)
    m = _TZO_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"not a time zone definition: {s!r}")
    h, mi = int(m["h"]), int(m["m"])
    if h > 23 or mi > 59:
        raise ValueError(f"not a time zone definition: {s!r}")
    d = _dt.timedelta(hours=h, minutes=mi)
    return -d if m["sign"] == "-" else d


def _frac(micro: int) -> str:
    if not micro:
        return ""
    if micro % 1000 == 0:
        return f".{micro // 1000:03d}"
    return f".{micro:06d}"


def _micro(frac: str | None) -> int:
    return 0 if not frac else int((frac + "000000")[:6])


def format_datetime(t: _dt.datetime) -> str:
    """The DateTime profile of ``t`` in UTC, such as ``2002-09-10T23:08:25Z``.

    Fractions of a second are written when present (milliseconds, or
    microseconds when needed).  A naive ``t`` (without ``tzinfo``) raises
    ``ValueError``: its instant is unknown.
    """
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("a naive datetime has no instant: give it a tzinfo")
    u = t.astimezone(_dt.timezone.utc)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f"{_frac(u.microsecond)}Z"
    )


def parse_datetime(s: str) -> _dt.datetime:
    """Read the DateTime profile: an aware datetime in the offset ``s`` gives.

    Any number of fraction digits is accepted (beyond microseconds they are
    dropped); the time zone definition is required.  ``ValueError`` for
    anything else, including impossible dates and times.

    >>> parse_datetime("2002-09-10T23:41:07Z").isoformat()
    '2002-09-10T23:41:07+00:00'
    """
    m = _DATETIME_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"not an XEP-0082 DateTime: {s!r}")
    tz = _dt.timezone(parse_tzo(m["tzd"]))
    return _dt.datetime(
        int(m["y"]), int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"]), _micro(m["frac"]), tz
    )


def format_date(d: _dt.date) -> str:
    """The Date profile of ``d``, such as ``1776-07-04``."""
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def parse_date(s: str) -> _dt.date:
    """Read the Date profile ``CCYY-MM-DD`` (``ValueError`` otherwise)."""
    m = _DATE_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"not an XEP-0082 Date: {s!r}")
    return _dt.date(int(m["y"]), int(m["m"]), int(m["d"]))


def format_time(t: _dt.time) -> str:
    """The Time profile of ``t``: ``hh:mm:ss[.sss]``, then the offset if ``t`` is aware."""
    s = f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}{_frac(t.microsecond)}"
    off = t.utcoffset()
    if off is None:
        return s
    return s + ("Z" if not off else format_tzo(off))


def parse_time(s: str) -> _dt.time:
    """Read the Time profile ``hh:mm:ss[.sss][TZD]``: an aware time when a
    time zone is given, a naive one otherwise (``ValueError`` if malformed)."""
    m = _TIME_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"not an XEP-0082 Time: {s!r}")
    tz = None if m["tzd"] is None else _dt.timezone(parse_tzo(m["tzd"]))
    return _dt.time(int(m["H"]), int(m["M"]), int(m["S"]), _micro(m["frac"]), tz)


@dataclasses.dataclass(frozen=True)
class EntityTime:
    """An entity's clock (XEP-0202): ``utc``, an aware datetime, and
    ``tzo``, the entity's offset from UTC."""

    utc: _dt.datetime
    tzo: _dt.timedelta = _dt.timedelta(0)

    @property
    def local(self) -> _dt.datetime:
        """The entity's local time: ``utc`` in the offset ``tzo``."""
        return self.utc.astimezone(_dt.timezone(self.tzo))

    @classmethod
    def of(cls, t: _dt.datetime) -> EntityTime:
        """The entity time of an aware local datetime ``t`` (its offset becomes ``tzo``)."""
        off = t.utcoffset()
        if off is None:
            raise ValueError("a naive datetime has no instant: give it a tzinfo")
        return cls(t.astimezone(_dt.timezone.utc), off)

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<time xmlns='urn:xmpp:time'/>`` element."""
        t = StartElement(TIME)
        yield t
        for local, text in (("tzo", format_tzo(self.tzo)), ("utc", format_datetime(self.utc))):
            s = StartElement(Name(NS, local))
            yield s
            yield CharData(text)
            yield s.end()
        yield t.end()

    @classmethod
    def from_element(cls, el: Any) -> EntityTime:
        """Read a ``<time/>`` element; ``ValueError`` if it is not one or its
        ``utc`` or ``tzo`` is missing or malformed."""
        if not _is(el.name, TIME):
            raise ValueError(f"not an entity time element: {el.name!r}")
        utc = el.find("utc", NS)
        tzo = el.find("tzo", NS)
        if utc is None or tzo is None:
            raise ValueError("an entity time needs a utc and a tzo")
        return cls(parse_datetime(utc.text.strip()), parse_tzo(tzo.text.strip()))


def _jid(to: JID | str | None) -> JID | None:
    if to is None or isinstance(to, JID):
        return to
    return JID.parse(to)


async def get(
    session: Session, to: JID | str | None, *, timeout: float | None = DEFAULT_IQ_TIMEOUT
) -> EntityTime:
    """Ask ``to`` (``None``: the session's server) for its time.

    Raises the :class:`~xmpp.stanza.StanzaError` of an error reply,
    ``ValueError`` for an answer without a well-formed ``<time/>``, and
    ``TimeoutError``/``RuntimeError`` as :meth:`xmpp.session.Session.send_iq`.
    """
    t = StartElement(TIME)
    reply = await session.send_iq(IQ(to=_jid(to), type=IQType.GET), (t, t.end()), timeout=timeout)
    found = reply.find("time", NS)
    if found is None:
        raise ValueError("the entity time answer has no <time/>")
    return EntityTime.from_element(found)


def _now() -> _dt.datetime:
    return _dt.datetime.now().astimezone()


class Handler:
    """Answers entity time queries with the time of ``clock`` (a function
    returning an aware datetime in the local offset; the system's clock
    and time zone by default)."""

    #: The disco feature this handler implements (read by the mux).
    disco_features = (NS,)

    def __init__(self, clock: Callable[[], _dt.datetime] | None = None) -> None:
        """Make a handler; see the class documentation."""
        self.clock = clock if clock is not None else _now

    async def handle_iq(self, iq: IQ, element: Element, session: Session) -> None:
        """Answer one query (called by the mux for IQ gets with a ``<time/>``)."""
        await session.send(iq.result(EntityTime.of(self.clock()).tokens(), session.stanza_ns))


def handle(clock: Callable[[], _dt.datetime] | None = None) -> Callable[[ServeMux], None]:
    """A :class:`~xmpp.mux.ServeMux` option answering entity time queries (see :class:`Handler`)."""
    h = Handler(clock)

    def apply(mux: ServeMux) -> None:
        mux.iq(IQType.GET, TIME, h)

    return apply
