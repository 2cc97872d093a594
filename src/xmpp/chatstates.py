"""Chat State Notifications (XEP-0085): active, composing, paused, inactive, gone.

A chat state is an empty element in ``http://jabber.org/protocol/chatstates``
inside a message, next to a body or alone (a *standalone notification*).
:class:`State` names the five states and writes their tokens; :func:`parse`
reads the state of a received message; :func:`send` sends a standalone
notification; :class:`Handler`/:func:`handle` route received states to a
function.

>>> from xmpp.xmlstream import Element
>>> el = Element.from_tokens(State.COMPOSING.tokens())
>>> el.name.local, State.from_element(el)
('composing', <State.COMPOSING: 'composing'>)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from xmpp.jid import JID
from xmpp.stanza import Message, MessageType
from xmpp.xmlstream import Element, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.mux import ServeMux
    from xmpp.session import Session

__all__ = ["NS", "Handler", "State", "handle", "parse", "send"]

#: The namespace of XEP-0085 (also its disco feature).
NS = "http://jabber.org/protocol/chatstates"


class State(str, enum.Enum):
    """The five chat states of XEP-0085 section 2."""

    #: The user takes part in the conversation.
    ACTIVE = "active"
    #: The user is writing a message.
    COMPOSING = "composing"
    #: The user was composing and stopped for a while.
    PAUSED = "paused"
    #: The user has not taken part for a while.
    INACTIVE = "inactive"
    #: The user has left the conversation.
    GONE = "gone"

    def __str__(self) -> str:
        """Return the element's local name, such as ``composing``."""
        return self.value

    @property
    def element_name(self) -> Name:
        """The name of this state's element."""
        return Name(NS, self.value)

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of this state's empty element."""
        s = StartElement(self.element_name)
        yield s
        yield s.end()

    @classmethod
    def from_element(cls, el: Any) -> State:
        """Read a chat state element; ``ValueError`` for any other element."""
        if el.name.space != NS or el.name.local not in _BY_LOCAL:
            raise ValueError(f"not a chat state: {el.name!r}")
        return _BY_LOCAL[el.name.local]


_BY_LOCAL: dict[str, State] = {s.value: s for s in State}


def parse(message: Any) -> State | None:
    """The chat state of a received message element (its first chat state child), or ``None``."""
    for child in message.children():
        name = child.name
        if name.space == NS and name.local in _BY_LOCAL:
            return _BY_LOCAL[name.local]
    return None


async def send(
    session: Session, to: JID | str, state: State, type: MessageType = MessageType.CHAT
) -> None:
    """Send ``state`` to ``to`` as a standalone notification (a message
    of ``type``, ``chat`` by default, with nothing but the state)."""
    jid = to if isinstance(to, JID) else JID.parse(to)
    await session.send_message(Message(to=jid, type=type), state.tokens())


class Handler:
    """Calls ``on_state(message, state, session)`` for each received chat state."""

    #: The disco feature this handler implements (read by the mux).
    disco_features = (NS,)

    def __init__(self, on_state: Callable[[Message, State, Session], object]) -> None:
        """Make a handler; see the class documentation."""
        self.on_state = on_state

    def handle_message(self, msg: Message, element: Element, session: Session) -> Any:
        """Handle one message with a chat state (called by the mux); returns what ``on_state`` returns."""
        if msg.type is MessageType.ERROR:
            return None
        state = parse(element)
        if state is None:
            return None
        return self.on_state(msg, state, session)


def handle(on_state: Callable[[Message, State, Session], object]) -> Callable[[ServeMux], None]:
    """A :class:`~xmpp.mux.ServeMux` option routing messages of any type whose
    first registered child is a chat state to ``on_state`` (see :class:`Handler`).

    The mux routes a message by the first of its children that has a
    handler: a message whose ``<body/>`` comes before its state goes to a
    body handler if there is one, which can read the state with :func:`parse`.
    """
    h = Handler(on_state)

    def apply(mux: ServeMux) -> None:
        for s in State:
            mux.message(None, s.element_name, h)

    return apply
