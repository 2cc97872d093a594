"""Stream-level values of RFC 6120 section 4: namespaces and stream errors.

A stream error ends the whole stream (compare :class:`xmpp.stanza.StanzaError`,
which answers one stanza and lets the stream go on).  Every defined condition
of RFC 6120 section 4.9.3 is a member of :class:`Condition`; code never spells
a condition as a loose string.

This module imports nothing from the engine at import time, because the
engine itself raises :class:`StreamError`.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "NS_STREAMS",
    "NS_STREAM_ERRORS",
    "NS_CLIENT",
    "NS_SERVER",
    "NS_COMPONENT",
    "NS_XML",
    "Condition",
    "StreamError",
]

#: The namespace of the ``<stream:stream>`` wrapper and ``<stream:features>``.
NS_STREAMS = "http://etherx.jabber.org/streams"
#: The namespace of the defined conditions inside ``<stream:error>``.
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
#: The default namespace of client-to-server streams.
NS_CLIENT = "jabber:client"
#: The default namespace of server-to-server streams.
NS_SERVER = "jabber:server"
#: The default namespace of XEP-0114 component streams.
NS_COMPONENT = "jabber:component:accept"
#: The namespace bound to the ``xml:`` prefix (``xml:lang``).
NS_XML = "http://www.w3.org/XML/1998/namespace"


class Condition(str, enum.Enum):
    """The defined stream error conditions of RFC 6120 section 4.9.3."""

    BAD_FORMAT = "bad-format"
    BAD_NAMESPACE_PREFIX = "bad-namespace-prefix"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_GONE = "host-gone"
    HOST_UNKNOWN = "host-unknown"
    IMPROPER_ADDRESSING = "improper-addressing"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    INVALID_FROM = "invalid-from"
    INVALID_NAMESPACE = "invalid-namespace"
    INVALID_XML = "invalid-xml"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_CONNECTION_FAILED = "remote-connection-failed"
    RESET = "reset"
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SEE_OTHER_HOST = "see-other-host"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNDEFINED_CONDITION = "undefined-condition"
    UNSUPPORTED_ENCODING = "unsupported-encoding"
    UNSUPPORTED_FEATURE = "unsupported-feature"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"

    def __str__(self) -> str:
        return self.value


class StreamError(Exception):
    """A stream error (RFC 6120 section 4.9): the stream cannot go on.

    ``condition`` is a :class:`Condition` (a string naming a defined
    condition is converted; an unknown one raises ``ValueError``).  ``text``
    is an optional human-readable description in language ``lang``.
    ``app`` is an optional application-specific condition element.

    When the engine raises a ``StreamError`` from
    :meth:`xmpp.xmlstream.StreamParser.feed`, ``events`` holds the events
    that were complete before the error in that same call, so that nothing
    the peer sent correctly is lost.

    >>> err = StreamError(Condition.POLICY_VIOLATION, "too big")
    >>> err.condition is Condition.POLICY_VIOLATION, str(err)
    (True, 'policy-violation: too big')
    """

    condition: Condition
    text: str | None
    lang: str | None
    app: Any
    events: list[Any]

    def __init__(
        self,
        condition: Condition | str,
        text: str | None = None,
        *,
        lang: str | None = None,
        app: Any = None,
    ) -> None:
        cond = Condition(condition)
        super().__init__(cond, text)
        self.condition = cond
        self.text = text
        self.lang = lang
        self.app = app
        self.events = []

    def __str__(self) -> str:
        if self.text:
            return f"{self.condition.value}: {self.text}"
        return self.condition.value

    def __repr__(self) -> str:
        return f"StreamError({self.condition.value!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamError):
            return NotImplemented
        return (self.condition, self.text, self.lang) == (
            other.condition,
            other.text,
            other.lang,
        )

    __hash__ = Exception.__hash__
