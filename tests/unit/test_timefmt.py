import datetime as dt

from crm_common.timefmt import iso_timestamp


def test_timestamps_have_four_digit_years_and_milliseconds():
    assert iso_timestamp(dt.datetime(2024, 3, 10, 10, 0, 0, 123456, dt.timezone.utc)) == \
        "2024-03-10T10:00:00.123Z"
    # strftime's %Y would write "165-02-05...": not ISO 8601
    assert iso_timestamp(dt.datetime(165, 2, 5, 4, 28, 8)) == "0165-02-05T04:28:08.000Z"
    assert iso_timestamp(dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)) == \
        "0001-01-01T00:00:00.000Z"
