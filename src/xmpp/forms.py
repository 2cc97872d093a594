"""Data forms (XEP-0004): typed fields, validation, and their tokens.

A :class:`Form` is an ordered list of :class:`Field` values plus a type
(``form``, ``submit``, ``cancel`` or ``result``), a title and instructions.
Forms read themselves from a received ``<x xmlns='jabber:x:data'/>``
element (:meth:`Form.from_element`) and write themselves as tokens
(:meth:`Form.tokens`), so they travel inside any payload: ad-hoc commands
(:mod:`xmpp.commands`), disco extensions, registration.

A field's raw values are strings (``values``); :attr:`Field.value` reads
and writes them typed by the field type: ``bool`` for ``boolean``, a
:class:`~xmpp.jid.JID` for ``jid-single``, a list of JIDs for
``jid-multi``, a list of strings for ``list-multi`` and ``text-multi``, a
string otherwise.

>>> form = Form(FormType.FORM, title="Settings", fields=[
...     Field("FORM_TYPE", FieldType.HIDDEN, values=["urn:example:settings"]),
...     Field("notify", FieldType.BOOLEAN, label="Notify me", required=True),
...     Field("color", FieldType.LIST_SINGLE, options=[Option("red"), Option("blue")]),
... ])
>>> form.form_type
'urn:example:settings'
>>> [str(p) for p in form.problems()]
['notify: a value is required']
>>> form["notify"].value = True
>>> form["color"].value = "blue"
>>> reply = form.submit()
>>> reply.type, reply["notify"].values, reply["color"].value
(<FormType.SUBMIT: 'submit'>, ['1'], 'blue')
>>> Form.from_element(Element.from_tokens(list(reply.tokens()))) == reply
True
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator
from typing import Any

from xmpp.jid import JID, JIDError
from xmpp.xmlstream import Attr, CharData, Element, EndElement, Name, StartElement, Token

__all__ = [
    "NS",
    "Field",
    "FieldType",
    "Form",
    "FormError",
    "FormType",
    "Option",
    "Problem",
]

#: The namespace of data forms.
NS = "jabber:x:data"

_X = Name(NS, "x")
_TITLE = Name(NS, "title")
_INSTR = Name(NS, "instructions")
_FIELD = Name(NS, "field")
_DESC = Name(NS, "desc")
_REQUIRED = Name(NS, "required")
_VALUE = Name(NS, "value")
_OPTION = Name(NS, "option")
_REPORTED = Name(NS, "reported")
_ITEM = Name(NS, "item")
_TRUE = frozenset(("1", "true"))
_FALSE = frozenset(("0", "false"))



def _is(el: Element, local: str) -> bool:
    """Whether ``el`` is ``local`` in this module's namespace (names of either engine)."""
    name = el.name
    return name.local == local and name.space == NS

class FormType(str, enum.Enum):
    """The ``type`` of a form (XEP-0004 section 3.1)."""

    #: A form to fill in.
    FORM = "form"
    #: A filled-in form.
    SUBMIT = "submit"
    #: The requester declined to fill in the form.
    CANCEL = "cancel"
    #: Data returned, such as search results.
    RESULT = "result"

    def __str__(self) -> str:
        """Return the attribute value, such as ``submit``."""
        return self.value


class FieldType(str, enum.Enum):
    """The ``type`` of a field (XEP-0004 section 3.3)."""

    BOOLEAN = "boolean"
    FIXED = "fixed"
    HIDDEN = "hidden"
    JID_MULTI = "jid-multi"
    JID_SINGLE = "jid-single"
    LIST_MULTI = "list-multi"
    LIST_SINGLE = "list-single"
    TEXT_MULTI = "text-multi"
    TEXT_PRIVATE = "text-private"
    TEXT_SINGLE = "text-single"

    def __str__(self) -> str:
        """Return the attribute value, such as ``list-single``."""
        return self.value


_MULTI = frozenset((FieldType.JID_MULTI, FieldType.LIST_MULTI, FieldType.TEXT_MULTI))
_TYPES = {t.value: t for t in FieldType}


class FormError(ValueError):
    """A form that is malformed, or that fails :meth:`Form.validate`.

    ``problems`` lists every :class:`Problem` found (empty for a malformed
    element).
    """

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        """Make the error with its message and the problems behind it."""
        super().__init__(message)
        self.problems = list(problems)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason a form does not validate: the field's ``var`` and what is wrong."""

    var: str
    reason: str

    def __str__(self) -> str:
        """Return ``var: reason``."""
        return f"{self.var}: {self.reason}"


@dataclasses.dataclass
class Option:
    """One choice of a list field: its ``value`` and an optional human ``label``."""

    value: str
    label: str = ""


@dataclasses.dataclass
class Field:
    """One form field (XEP-0004 section 3.2).

    ``var`` names it (only a ``fixed`` field may go without); ``type`` is a
    :class:`FieldType` (a missing type reads as ``text-single``, the
    default); ``values`` holds its raw string values; ``options`` the
    choices of a list field.

    >>> f = Field("when", FieldType.JID_MULTI)
    >>> f.value = ["a@example.com", JID.parse("b@example.com")]
    >>> f.values
    ['a@example.com', 'b@example.com']
    """

    var: str = ""
    type: FieldType = FieldType.TEXT_SINGLE
    label: str = ""
    desc: str = ""
    required: bool = False
    values: list[str] = dataclasses.field(default_factory=list)
    options: list[Option] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        """Convert a type given as a string."""
        if not isinstance(self.type, FieldType):
            self.type = FieldType(self.type)
        self.values = [str(v) for v in self.values]

    @property
    def value(self) -> Any:
        """The value, typed by the field type.

        ``boolean``: ``True`` or ``False`` (``False`` when empty; raises
        :class:`FormError` for a value other than ``0``, ``1``, ``false``,
        ``true``).  ``jid-single``: a :class:`~xmpp.jid.JID` or ``None``
        (raises :class:`FormError` for a malformed address).  ``jid-multi``:
        a list of JIDs.  ``list-multi`` and ``text-multi``: the list of
        strings.  Otherwise the first value, or ``None``.  Setting it stores
        the string forms (``None`` clears the field).
        """
        t = self.type
        vals = self.values
        if t is FieldType.BOOLEAN:
            if not vals:
                return False
            v = vals[0].strip()
            if v in _TRUE:
                return True
            if v in _FALSE:
                return False
            raise FormError(f"{self.var}: {v!r} is not a boolean")
        if t is FieldType.JID_SINGLE:
            return _jid(self.var, vals[0]) if vals else None
        if t is FieldType.JID_MULTI:
            return [_jid(self.var, v) for v in vals]
        if t in _MULTI:
            return list(vals)
        return vals[0] if vals else None

    @value.setter
    def value(self, value: Any) -> None:
        if value is None:
            self.values = []
        elif self.type is FieldType.BOOLEAN:
            if not isinstance(value, bool):
                raise TypeError("a boolean field takes True or False")
            self.values = ["1" if value else "0"]
        elif isinstance(value, (str, JID)):
            self.values = [str(value)]
        else:
            self.values = [str(v) for v in value]

    def problems(self) -> list[Problem]:
        """Every reason this field's value is not acceptable in a submitted form."""
        out: list[Problem] = []
        var = self.var or "(fixed)"
        vals = [v for v in self.values if v != ""] if self.type is not FieldType.TEXT_MULTI else self.values
        if self.type is FieldType.FIXED:
            return out
        if self.required and not vals:
            return [Problem(var, "a value is required")]
        if self.type not in _MULTI and len(self.values) > 1:
            out.append(Problem(var, "a single-valued field has more than one value"))
        if self.type is FieldType.BOOLEAN:
            for v in vals:
                if v.strip() not in _TRUE and v.strip() not in _FALSE:
                    out.append(Problem(var, f"{v!r} is not a boolean (0, 1, false, true)"))
        elif self.type in (FieldType.JID_SINGLE, FieldType.JID_MULTI):
            seen: set[JID] = set()
            for v in vals:
                try:
                    j = JID.parse(v)
                except JIDError as exc:
                    out.append(Problem(var, f"{v!r} is not a valid address: {exc}"))
                    continue
                if j in seen:
                    out.append(Problem(var, f"{v!r} is listed twice"))
                seen.add(j)
        elif self.type in (FieldType.LIST_SINGLE, FieldType.LIST_MULTI) and self.options:
            allowed = {o.value for o in self.options}
            for v in vals:
                if v not in allowed:
                    out.append(Problem(var, f"{v!r} is not one of the options"))
        return out

    def tokens(self, *, submit: bool = False) -> Iterator[Token]:
        """Yield the tokens of the ``<field/>`` element.

        With ``submit`` only what a submitted form carries is written: the
        ``var``, the ``type`` and the values (XEP-0004 section 3.2 says a
        submitting entity need not send labels, descriptions or options).
        """
        attrs = []
        if self.var:
            attrs.append(Attr(Name("", "var"), self.var))
        attrs.append(Attr(Name("", "type"), self.type.value))
        if self.label and not submit:
            attrs.append(Attr(Name("", "label"), self.label))
        start = StartElement(_FIELD, attrs)
        yield start
        if not submit:
            if self.desc:
                yield from _text_el(_DESC, self.desc)
            if self.required:
                yield StartElement(_REQUIRED)
                yield EndElement(_REQUIRED)
        for v in self.values:
            yield from _text_el(_VALUE, v)
        if not submit:
            for o in self.options:
                ostart = StartElement(_OPTION, [Attr(Name("", "label"), o.label)] if o.label else [])
                yield ostart
                yield from _text_el(_VALUE, o.value)
                yield ostart.end()
        yield start.end()

    @classmethod
    def from_element(cls, el: Element) -> Field:
        """Read a ``<field/>`` element (either engine's).

        Raises :class:`FormError` for an unknown ``type`` or a field without
        ``var`` that is not ``fixed``.
        """
        t = el.get("type")
        if t is None:
            ftype = FieldType.TEXT_SINGLE
        else:
            found = _TYPES.get(t)
            if found is None:
                raise FormError(f"unknown field type {t!r}")
            ftype = found
        var = el.get("var", "") or ""
        if not var and ftype is not FieldType.FIXED:
            raise FormError("a field other than fixed needs a var")
        f = cls(var, ftype, el.get("label", "") or "")
        for child in el.children():
            if child.name.space != NS:
                continue
            local = child.name.local
            if local == "value":
                f.values.append(child.text)
            elif local == "desc":
                f.desc = child.text
            elif local == "required":
                f.required = True
            elif local == "option":
                v = child.find("value", NS)
                f.options.append(Option("" if v is None else v.text, child.get("label", "") or ""))
        return f


def _jid(var: str, s: str) -> JID:
    try:
        return JID.parse(s)
    except JIDError as exc:
        raise FormError(f"{var}: {s!r} is not a valid address: {exc}") from None


def _text_el(name: Name, text: str) -> Iterator[Token]:
    start = StartElement(name)
    yield start
    if text:
        yield CharData(text)
    yield start.end()


@dataclasses.dataclass
class Form:
    """A data form (XEP-0004): type, title, instructions and ordered fields.

    ``form[var]`` gives the field named ``var`` (``KeyError`` if there is
    none), ``var in form`` tells whether there is one, ``len(form)`` and
    iteration go over the fields.  A ``result`` form may carry a table:
    ``reported`` (the column fields) and ``items`` (each a list of fields).
    """

    type: FormType = FormType.FORM
    title: str = ""
    instructions: list[str] = dataclasses.field(default_factory=list)
    fields: list[Field] = dataclasses.field(default_factory=list)
    reported: list[Field] = dataclasses.field(default_factory=list)
    items: list[list[Field]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        """Convert a type given as a string."""
        if not isinstance(self.type, FormType):
            self.type = FormType(self.type)

    def __getitem__(self, var: str) -> Field:
        """Return the field named ``var``."""
        for f in self.fields:
            if f.var == var and var:
                return f
        raise KeyError(var)

    def __contains__(self, var: object) -> bool:
        """Whether a field is named ``var``."""
        return any(f.var == var for f in self.fields if f.var)

    def __iter__(self) -> Iterator[Field]:
        """Iterate over the fields in order."""
        return iter(self.fields)

    def __len__(self) -> int:
        """Return the number of fields."""
        return len(self.fields)

    def get(self, var: str, default: Any = None) -> Any:
        """Return the typed :attr:`Field.value` of field ``var``, or ``default`` if there is none."""
        for f in self.fields:
            if f.var == var and var:
                return f.value
        return default

    @property
    def form_type(self) -> str | None:
        """The value of the hidden ``FORM_TYPE`` field (XEP-0068), or ``None``."""
        for f in self.fields:
            if f.var == "FORM_TYPE":
                return f.values[0] if f.values else None
        return None

    def problems(self) -> list[Problem]:
        """Every reason the form's values are not acceptable (empty when they are).

        Checks each field: a required field without a value, more than one
        value in a single-valued field, a boolean other than ``0``, ``1``,
        ``false``, ``true``, a malformed or repeated address, a list value
        that is not one of the options; and two fields with the same var.
        """
        out: list[Problem] = []
        seen: set[str] = set()
        for f in self.fields:
            if f.var:
                if f.var in seen:
                    out.append(Problem(f.var, "the field appears twice"))
                seen.add(f.var)
            out.extend(f.problems())
        return out

    def validate(self) -> None:
        """Raise :class:`FormError` listing every problem, if there is any."""
        probs = self.problems()
        if probs:
            raise FormError("; ".join(str(p) for p in probs), probs)

    def check_submission(self, submitted: Form) -> Form:
        """Check ``submitted`` (the answer to this form) against this form.

        Returns a copy of this form holding the submitted values, and raises
        :class:`FormError` when ``submitted`` is not of type ``submit``,
        names a field this form does not have, or its values fail
        :meth:`validate` under this form's field types, options and
        ``required`` flags.  Fields of type ``fixed`` keep their text.
        """
        if submitted.type is not FormType.SUBMIT:
            raise FormError(f"expected a submitted form, got type {submitted.type.value!r}")
        filled = Form(self.type, self.title, list(self.instructions), [])
        got = {f.var: f for f in submitted.fields if f.var}
        problems: list[Problem] = []
        known = {f.var for f in self.fields if f.var}
        for var in got:
            if var not in known:
                problems.append(Problem(var, "no such field in the form"))
        for f in self.fields:
            nf = dataclasses.replace(f, values=list(f.values), options=list(f.options))
            if f.var in got and f.type is not FieldType.FIXED:
                nf.values = list(got[f.var].values)
            elif f.type not in (FieldType.FIXED, FieldType.HIDDEN):
                nf.values = []
            filled.fields.append(nf)
        problems.extend(filled.problems())
        if problems:
            raise FormError("; ".join(str(p) for p in problems), problems)
        return filled

    def submit(self) -> Form:
        """Return the ``submit`` form answering this one: every field with a var, and its values."""
        return Form(
            FormType.SUBMIT,
            fields=[
                Field(f.var, f.type, values=list(f.values))
                for f in self.fields
                if f.var and f.type is not FieldType.FIXED
            ],
        )

    @staticmethod
    def cancel() -> Form:
        """Return a ``cancel`` form (the requester declines to fill in a form)."""
        return Form(FormType.CANCEL)

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<x xmlns='jabber:x:data'/>`` element."""
        start = StartElement(_X, [Attr(Name("", "type"), self.type.value)])
        yield start
        submit = self.type is FormType.SUBMIT
        if self.title and not submit:
            yield from _text_el(_TITLE, self.title)
        for line in self.instructions if not submit else ():
            yield from _text_el(_INSTR, line)
        for f in self.fields:
            yield from f.tokens(submit=submit)
        if self.reported:
            yield StartElement(_REPORTED)
            for f in self.reported:
                yield from f.tokens()
            yield EndElement(_REPORTED)
        for row in self.items:
            yield StartElement(_ITEM)
            for f in row:
                yield from f.tokens(submit=True)
            yield EndElement(_ITEM)
        yield start.end()

    @classmethod
    def from_element(cls, el: Element) -> Form:
        """Read an ``<x xmlns='jabber:x:data'/>`` element (either engine's).

        Raises :class:`FormError` if the element is not a form, its type is
        unknown, or a field is malformed (see :meth:`Field.from_element`).
        Elements in other namespaces are ignored.
        """
        if not _is(el, "x"):
            raise FormError(f"not a data form: {el.name!r}")
        t = el.get("type", "form") or "form"
        try:
            ftype = FormType(t)
        except ValueError:
            raise FormError(f"unknown form type {t!r}") from None
        form = cls(ftype)
        for child in el.children():
            if child.name.space != NS:
                continue
            local = child.name.local
            if local == "field":
                form.fields.append(Field.from_element(child))
            elif local == "title":
                form.title = child.text
            elif local == "instructions":
                form.instructions.append(child.text)
            elif local == "reported":
                form.reported = [Field.from_element(c) for c in child.children() if _is(c, "field")]
            elif local == "item":
                form.items.append([Field.from_element(c) for c in child.children() if _is(c, "field")])
        return form

    @classmethod
    def find(cls, el: Element) -> Form | None:
        """Read the first data form among the children of ``el``, or ``None`` if it has none."""
        x = el.find("x", NS)
        return None if x is None else cls.from_element(x)
