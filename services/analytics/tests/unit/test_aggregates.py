"""The aggregates' rules without a database: contributions and their
difference, ordering of snapshots, change/trend, and chart buckets."""
import datetime as dt
from decimal import Decimal

import pytest

from analytics import aggregates as agg

D = dt.date


def lead(status="new", value=100.0, created="2024-03-10T10:00:00.000Z", updated=None,
         closed=None, source="Web"):
    return {"id": "0b6f3f5e-8a59-4c1b-9d0e-2f7d1f7c9a11", "status": status, "value": value,
            "source": source, "createdAt": created, "updatedAt": updated or created,
            "closedAt": closed}


def fact(**kw):
    return agg.fact_from_lead(lead(**kw))


def test_a_new_lead_counts_as_created_only():
    assert agg.delta(None, fact()) == ({(D(2024, 3, 10), "Web"): (1, 0)}, {})


def test_a_lead_created_closed_counts_on_its_creation_day():
    f = fact(status="closed", closed="2024-03-10T10:00:00.000Z")
    assert agg.delta(None, f) == ({(D(2024, 3, 10), "Web"): (1, 1)},
                                  {D(2024, 3, 10): (1, Decimal("100.0"))})


def test_closing_moves_the_lead_into_its_closing_day():
    before = fact(updated="2024-03-10T10:00:00.000Z")
    after = fact(status="closed", updated="2024-03-12T23:59:59.999Z",
                 closed="2024-03-12T23:59:59.999Z")
    assert agg.delta(before, after) == ({(D(2024, 3, 10), "Web"): (0, 1)},
                                        {D(2024, 3, 12): (1, Decimal("100.0"))})


def test_reopening_takes_the_revenue_back():
    closed = fact(status="closed", updated="2024-03-12T00:00:00.000Z",
                  closed="2024-03-12T00:00:00.000Z")
    reopened = fact(status="proposal", updated="2024-03-13T00:00:00.000Z")
    assert agg.delta(closed, reopened) == ({(D(2024, 3, 10), "Web"): (0, -1)},
                                           {D(2024, 3, 12): (-1, Decimal("-100.0"))})


def test_a_value_change_after_closing_moves_the_revenue():
    closed = fact(status="closed", closed="2024-03-12T00:00:00.000Z")
    richer = fact(status="closed", value=250.0, closed="2024-03-12T00:00:00.000Z",
                  updated="2024-03-14T00:00:00.000Z")
    assert agg.delta(closed, richer) == ({}, {D(2024, 3, 12): (0, Decimal("150.0"))})


def test_a_source_change_moves_the_lead_between_sources():
    assert agg.delta(fact(), fact(source="Ads")) == (
        {(D(2024, 3, 10), "Ads"): (1, 0), (D(2024, 3, 10), "Web"): (-1, 0)}, {})


def test_a_deletion_takes_everything_back():
    closed = fact(status="closed", closed="2024-03-12T00:00:00.000Z")
    gone = agg.fact_from_lead(lead(status="closed", closed="2024-03-12T00:00:00.000Z"),
                              deleted=True)
    assert agg.delta(closed, gone) == ({(D(2024, 3, 10), "Web"): (-1, -1)},
                                       {D(2024, 3, 12): (-1, Decimal("-100.0"))})


def test_closed_day_is_the_utc_day_of_closed_at():
    f = fact(status="closed", created="2024-03-10T10:00:00.000Z",
             closed="2024-03-11T01:00:00+02:00")
    assert f.closed_day == D(2024, 3, 10)


def test_an_older_snapshot_is_ignored_a_newer_wins():
    old = fact(updated="2024-03-10T10:00:00.000Z")
    new = fact(status="closed", updated="2024-03-11T10:00:00.000Z")
    assert agg.decide(new, old) is new
    assert agg.decide(old, new) is new
    assert agg.decide(None, old) is old


def test_a_deletion_wins_and_is_never_undone():
    newer = fact(updated="2024-03-20T10:00:00.000Z")
    gone = agg.fact_from_lead(lead(updated="2024-03-11T10:00:00.000Z"), deleted=True)
    assert agg.decide(newer, gone) is gone
    assert agg.decide(gone, newer) is gone


@pytest.mark.parametrize("current, previous, change, trend", [
    (0, 0, 0.0, "flat"), (5, 0, 100.0, "up"), (0, 5, -100.0, "down"), (120, 100, 20.0, "up"),
    (2, 3, -33.3, "down"), (100, 100, 0.0, "flat"), (1, 3, -66.7, "down"),
])
def test_change_and_trend(current, previous, change, trend):
    assert agg.figure(current, previous) == {"value": current, "change": change, "trend": trend}


def test_conversion_rate_one_decimal_and_zero_when_none_created():
    assert agg.conversion_rate(0, 0) == 0.0
    assert agg.conversion_rate(3, 1) == 33.3


def test_previous_period_is_the_same_length_just_before():
    assert agg.previous_period(D(2024, 3, 1), D(2024, 3, 30)) == (D(2024, 1, 31), D(2024, 2, 29))
    assert agg.previous_period(D(2024, 3, 1), D(2024, 3, 1)) == (D(2024, 2, 29), D(2024, 2, 29))
    assert agg.previous_period(D(1, 1, 5), D(1, 1, 20)) == (dt.date.min, D(1, 1, 4))


def test_daily_chart_has_every_day_with_weekday_labels():
    points = agg.revenue_points(D(2024, 3, 10), D(2024, 3, 12), "day",
                                {D(2024, 3, 11): Decimal("40.5"), D(2024, 3, 20): 9})
    assert points == [{"date": "2024-03-10", "label": "Sun", "value": 0.0},
                      {"date": "2024-03-11", "label": "Mon", "value": 40.5},
                      {"date": "2024-03-12", "label": "Tue", "value": 0.0}]


def test_weekly_chart_buckets_by_iso_week_from_monday():
    points = agg.revenue_points(D(2024, 3, 10), D(2024, 3, 20), "week",
                                {D(2024, 3, 10): 1, D(2024, 3, 11): 2, D(2024, 3, 17): 3,
                                 D(2024, 3, 18): 4})
    assert points == [{"date": "2024-03-04", "label": "W10", "value": 1.0},
                      {"date": "2024-03-11", "label": "W11", "value": 5.0},
                      {"date": "2024-03-18", "label": "W12", "value": 4.0}]


def test_monthly_chart_buckets_by_month():
    points = agg.revenue_points(D(2023, 12, 15), D(2024, 2, 1), "month",
                                {D(2023, 12, 31): 1, D(2024, 1, 1): 2, D(2024, 2, 1): 3})
    assert points == [{"date": "2023-12-01", "label": "Dec", "value": 1.0},
                      {"date": "2024-01-01", "label": "Jan", "value": 2.0},
                      {"date": "2024-02-01", "label": "Feb", "value": 3.0}]


def test_buckets_stop_at_the_last_date():
    assert agg.buckets(D(9999, 12, 30), D(9999, 12, 31), "month") == [D(9999, 12, 1)]
    assert agg.buckets(D(9999, 12, 30), D(9999, 12, 31), "day") == [D(9999, 12, 30),
                                                                     D(9999, 12, 31)]
