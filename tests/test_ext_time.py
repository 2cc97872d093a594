"""XEP-0082 date and time profiles and XEP-0202 entity time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xmpp import time as xtime
from xmpp.mux import ServeMux
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import Element

UTC = dt.timezone.utc


def test_xep_0082_examples() -> None:
    # Section 3.2 DateTime examples.
    assert xtime.parse_datetime("1969-07-21T02:56:15Z") == dt.datetime(1969, 7, 21, 2, 56, 15, tzinfo=UTC)
    t = xtime.parse_datetime("1969-07-20T21:56:15-05:00")
    assert t == dt.datetime(1969, 7, 21, 2, 56, 15, tzinfo=UTC)
    assert t.utcoffset() == dt.timedelta(hours=-5)
    assert xtime.format_datetime(t) == "1969-07-21T02:56:15Z"
    # Section 3.1 Date and 3.3 Time.
    assert xtime.parse_date("1776-07-04") == dt.date(1776, 7, 4)
    assert xtime.format_date(dt.date(1776, 7, 4)) == "1776-07-04"
    assert xtime.parse_time("16:00:00") == dt.time(16, 0, 0)
    assert xtime.parse_time("16:00:00.123+01:30") == dt.time(16, 0, 0, 123000, dt.timezone(dt.timedelta(hours=1, minutes=30)))
    assert xtime.format_time(dt.time(16, 0, 0)) == "16:00:00"
    assert xtime.format_time(dt.time(16, 0, 0, tzinfo=UTC)) == "16:00:00Z"


def test_fractions() -> None:
    t = xtime.parse_datetime("2002-09-10T23:41:07.123456789Z")
    assert t.microsecond == 123456
    assert xtime.format_datetime(t) == "2002-09-10T23:41:07.123456Z"
    assert xtime.format_datetime(t.replace(microsecond=500000)) == "2002-09-10T23:41:07.500Z"


@pytest.mark.parametrize("bad", [
    "2002-09-10T23:41:07", "2002-09-10 23:41:07Z", "2002-13-10T23:41:07Z", "2002-09-10T25:41:07Z",
    "02-09-10T23:41:07Z", "2002-09-10T23:41:07+0500", "2002-09-10T23:41:07+24:00", "", "२००२-09-10T23:41:07Z",
])
def test_malformed_datetimes(bad: str) -> None:
    with pytest.raises(ValueError):
        xtime.parse_datetime(bad)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        xtime.format_datetime(dt.datetime(2020, 1, 1))
    with pytest.raises(ValueError):
        xtime.format_tzo(dt.timedelta(seconds=30))


@given(st.datetimes(timezones=st.just(UTC)), st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
def test_round_trip(t: dt.datetime, minutes: int) -> None:
    off = dt.timedelta(minutes=minutes)
    assert xtime.parse_tzo(xtime.format_tzo(off)) == off
    assert xtime.parse_datetime(xtime.format_datetime(t)) == t


async def test_entity_time_query() -> None:
    fixed = dt.datetime(2006, 12, 19, 11, 58, 35, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    mux = ServeMux(NS_CLIENT, xtime.handle(lambda: fixed))
    async with client_server_pair(server_handler=mux) as (client, _server):
        got = await xtime.get(client, "example.net", timeout=5)
    assert got.utc == fixed and got.utc.utcoffset() == dt.timedelta(0)
    assert got.tzo == dt.timedelta(hours=-6)
    assert got.local.isoformat() == "2006-12-19T11:58:35-06:00"
    assert mux.disco_features() == [xtime.NS]


async def test_default_clock_is_now() -> None:
    async with client_server_pair(server_handler=ServeMux(NS_CLIENT, xtime.handle())) as (client, _server):
        before = dt.datetime.now(UTC).replace(microsecond=0)
        got = await xtime.get(client, None, timeout=5)
        after = dt.datetime.now(UTC)
    assert before <= got.utc <= after


def test_xep_0202_example(engine: Any) -> None:
    xml = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
           b"<time xmlns='urn:xmpp:time'><tzo>-06:00</tzo><utc>2006-12-19T17:58:35Z</utc></time>")
    el = engine.StreamParser().feed(xml)[1]
    et = xtime.EntityTime.from_element(el)
    assert et.local == dt.datetime(2006, 12, 19, 11, 58, 35, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    back = Element.from_tokens(et.tokens())
    assert back.find("utc", xtime.NS).text == "2006-12-19T17:58:35Z"  # type: ignore[union-attr]
    assert back.find("tzo", xtime.NS).text == "-06:00"  # type: ignore[union-attr]
