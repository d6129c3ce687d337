"""Timestamps as the contract writes them: ISO 8601 UTC, milliseconds, `Z`."""
import datetime as dt
import re

UTC = dt.timezone.utc


def utcnow():
    return dt.datetime.now(UTC)


def iso_timestamp(value):
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    # Not strftime: its %Y does not pad years before 1000 to four digits.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond // 1000)


def iso_date(value):
    return None if value is None else value.isoformat()


def parse_timestamp(text):
    """Parse an ISO 8601 timestamp; a naive one is taken as UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else text
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
# fromisoformat alone would also take "20240312", or a bare date as midnight.
TIMESTAMP_START = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def parse_date_or_timestamp(text):
    """A `YYYY-MM-DD` date as a `date`, or an ISO 8601 timestamp as an aware
    UTC `datetime` (a naive one taken as UTC): the kind the client sent is
    kept. Anything else, or a moment outside years 1-9999, is a ValueError."""
    try:
        if DATE_ONLY.fullmatch(text):
            return dt.date.fromisoformat(text)
        if TIMESTAMP_START.match(text):
            return parse_timestamp(text)
    except (TypeError, ValueError, OverflowError):
        pass
    raise ValueError("must be a date (YYYY-MM-DD) or an ISO 8601 timestamp (years 1-9999)")
