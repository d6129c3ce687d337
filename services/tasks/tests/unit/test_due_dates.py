"""Parsing a due date: the kind the client sent is kept (crm_common.timefmt)."""
import datetime as dt

import pytest

from crm_common.timefmt import parse_date_or_timestamp


def test_a_date_stays_a_date():
    value = parse_date_or_timestamp("2030-01-02")
    assert type(value) is dt.date and value == dt.date(2030, 1, 2)


@pytest.mark.parametrize("text, expected", [
    ("2030-01-02T10:00:00Z", dt.datetime(2030, 1, 2, 10, 0, tzinfo=dt.timezone.utc)),
    ("2030-01-02T10:00:00+02:00", dt.datetime(2030, 1, 2, 8, 0, tzinfo=dt.timezone.utc)),
    ("2030-01-02T10:00", dt.datetime(2030, 1, 2, 10, 0, tzinfo=dt.timezone.utc)),
])
def test_a_timestamp_becomes_an_aware_utc_datetime(text, expected):
    assert parse_date_or_timestamp(text) == expected


@pytest.mark.parametrize("text", ["next tuesday", "20300102", "2030-02-30", "2030-1-2",
                                  "2030-01-02T25:00:00Z", "9999-12-31T23:00:00-05:00", "",
                                  None, 20300102])
def test_anything_else_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_date_or_timestamp(text)
