"""xmpp.forms: typed fields, validation, tokens in and out on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from xmpp.forms import NS, Field, FieldType, Form, FormError, FormType, Option, Problem
from xmpp.jid import JID
from xmpp.xmlstream import Encoder

ALL = Form(
    FormType.FORM,
    title="Everything",
    instructions=["Fill it in.", "Then submit."],
    fields=[
        Field("FORM_TYPE", FieldType.HIDDEN, values=["urn:example:all"]),
        Field("", FieldType.FIXED, values=["Section 1"]),
        Field("flag", FieldType.BOOLEAN, label="Flag", desc="A flag", required=True, values=["true"]),
        Field("who", FieldType.JID_SINGLE, values=["juliet@example.com"]),
        Field("team", FieldType.JID_MULTI, values=["a@example.com", "b@example.com/r"]),
        Field("one", FieldType.LIST_SINGLE, options=[Option("x", "Ex"), Option("y")], values=["y"]),
        Field("many", FieldType.LIST_MULTI, options=[Option("p"), Option("q"), Option("r")], values=["p", "r"]),
        Field("text", values=["hello & <bye>"]),
        Field("lines", FieldType.TEXT_MULTI, values=["first", "", "third"]),
        Field("secret", FieldType.TEXT_PRIVATE, values=["hunter2"]),
    ],
)


def parse(engine: Any, form: Form) -> Form:
    enc = Encoder()
    enc.encode(form.tokens())
    p = engine.StreamParser()
    p.feed(b"<stream xmlns='jabber:client'>")
    (el,) = p.feed(enc.flush())
    return Form.from_element(el)


def test_round_trip_and_typed_values(engine: Any) -> None:
    back = parse(engine, ALL)
    assert back == ALL
    assert back.form_type == "urn:example:all"
    assert back["flag"].value is True
    assert back["who"].value == JID.parse("juliet@example.com")
    assert back["team"].value == [JID.parse("a@example.com"), JID.parse("b@example.com/r")]
    assert back["one"].value == "y" and back["one"].options[0] == Option("x", "Ex")
    assert back["many"].value == ["p", "r"]
    assert back["text"].value == "hello & <bye>"
    assert back["lines"].value == ["first", "", "third"]
    assert back.get("missing", 5) == 5 and "secret" in back and "nope" not in back
    assert back.problems() == []
    ALL.validate()


def test_submit_and_cancel(engine: Any) -> None:
    sub = ALL.submit()
    assert sub.type is FormType.SUBMIT
    assert [f.var for f in sub] == ["FORM_TYPE", "flag", "who", "team", "one", "many", "text", "lines", "secret"]
    back = parse(engine, sub)
    assert back == sub and back["many"].options == [] and back.title == ""
    filled = ALL.check_submission(back)
    assert filled["flag"].value is True and filled["one"].options  # the form's options are kept
    c = parse(engine, Form.cancel())
    assert c.type is FormType.CANCEL and len(c) == 0
    with pytest.raises(FormError):
        ALL.check_submission(c)


def test_validation_problems() -> None:
    f = Form(fields=[
        Field("req", required=True),
        Field("b", FieldType.BOOLEAN, values=["yes"]),
        Field("j", FieldType.JID_SINGLE, values=["@bad"]),
        Field("jm", FieldType.JID_MULTI, values=["a@b", "a@b"]),
        Field("ls", FieldType.LIST_SINGLE, options=[Option("1")], values=["2"]),
        Field("lm", FieldType.LIST_MULTI, options=[Option("1")], values=["1", "3"]),
        Field("single", values=["a", "b"]),
        Field("dup"),
        Field("dup"),
    ])
    probs = f.problems()
    assert [p.var for p in probs] == ["req", "b", "j", "jm", "ls", "lm", "single", "dup"]
    with pytest.raises(FormError) as info:
        f.validate()
    assert info.value.problems == probs and isinstance(probs[0], Problem)
    with pytest.raises(FormError):
        _ = f["b"].value
    with pytest.raises(FormError):
        _ = f["j"].value


def test_check_submission_unknown_and_required() -> None:
    form = Form(fields=[Field("a", required=True), Field("h", FieldType.HIDDEN, values=["keep"])])
    with pytest.raises(FormError) as info:
        form.check_submission(Form(FormType.SUBMIT, fields=[Field("zzz", values=["1"])]))
    assert {p.var for p in info.value.problems} == {"zzz", "a"}
    ok = form.check_submission(Form(FormType.SUBMIT, fields=[Field("a", values=["v"])]))
    assert ok.get("a") == "v" and ok.get("h") == "keep"


def test_setters_and_malformed(engine: Any) -> None:
    f = Field("b", FieldType.BOOLEAN)
    assert f.value is False
    f.value = False
    assert f.values == ["0"]
    with pytest.raises(TypeError):
        f.value = "true"
    f.value = None
    assert f.values == []
    p = engine.StreamParser()
    p.feed(b"<stream xmlns='jabber:client'>")
    for bad in (
        b"<x xmlns='jabber:x:data' type='weird'/>",
        b"<x xmlns='jabber:x:data'><field type='no-such'/></x>",
        b"<x xmlns='jabber:x:data'><field type='text-single'/></x>",
        b"<y xmlns='jabber:x:data'/>",
    ):
        (el,) = p.feed(bad)
        with pytest.raises(FormError):
            Form.from_element(el)
    (el,) = p.feed(b"<x xmlns='jabber:x:data'><field var='t'><value>v</value></field><other xmlns='urn:o'/></x>")
    form = Form.from_element(el)
    assert form.type is FormType.FORM and form["t"].type is FieldType.TEXT_SINGLE and form["t"].value == "v"


def test_result_table(engine: Any) -> None:
    res = Form(FormType.RESULT, reported=[Field("name"), Field("jid", FieldType.JID_SINGLE)],
               items=[[Field("name", values=["A"]), Field("jid", FieldType.JID_SINGLE, values=["a@x"])],
                      [Field("name", values=["B"]), Field("jid", FieldType.JID_SINGLE, values=["b@x"])]])
    back = parse(engine, res)
    assert [f.var for f in back.reported] == ["name", "jid"]
    assert [[f.values[0] for f in row] for row in back.items] == [["A", "a@x"], ["B", "b@x"]]
    assert NS == "jabber:x:data"


@pytest.mark.parametrize("name", ["forms", "roster", "carbons", "blocking", "commands"])
def test_docstrings_and_examples(name: str) -> None:
    """Every public name of the module is documented, and its examples run."""
    import doctest
    import importlib

    mod = importlib.import_module(f"xmpp.{name}")
    assert mod.__doc__ and len(mod.__doc__) > 200
    for public in mod.__all__:
        obj = getattr(mod, public)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"{name}.{public}"
    result = doctest.testmod(mod)
    assert result.failed == 0
    if name in ("forms", "commands"):
        assert result.attempted >= 3
