"""Timestamps as the contract writes them: ISO 8601 UTC, milliseconds, `Z`."""
import datetime as dt

UTC = dt.timezone.utc


def utcnow():
    return dt.datetime.now(UTC)


def iso_timestamp(value):
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (value.microsecond // 1000)


def iso_date(value):
    return None if value is None else value.isoformat()


def parse_timestamp(text):
    """Parse an ISO 8601 timestamp; a naive one is taken as UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else text
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
