"""Pure rules of the dashboard aggregates (no database): what one lead fact
contributes to the daily tables, the difference between two facts, the
chart buckets, and the change/trend of a figure. See docs/analytics.md."""
import datetime as dt
from collections import namedtuple
from decimal import Decimal

from crm_common.timefmt import parse_timestamp

CLOSED = "closed"
INTERVALS = ("day", "week", "month")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")        # locale-independent
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
               "Dec")

# What the analytics service keeps of a lead.
Fact = namedtuple("Fact", "created_day source status value closed_day deleted version")


def fact_from_lead(lead, deleted=False):
    """The fact of a lead snapshot (the `lead` JSON of a leads event)."""
    created = parse_timestamp(lead["createdAt"])
    updated = parse_timestamp(lead.get("updatedAt") or lead["createdAt"])
    status = lead.get("status") or "new"
    closed_day = None
    if status == CLOSED:
        # closedAt is the closing moment; an event without it closes on its update.
        closed_day = parse_timestamp(lead.get("closedAt") or lead.get("updatedAt")
                                     or lead["createdAt"]).date()
    value = Decimal(str(lead.get("value") or 0))
    return Fact(created.date(), lead.get("source") or "Manual", status, value, closed_day,
                bool(deleted), updated)


def contributions(fact):
    """What a fact adds to the daily tables:
    ({(day, source): (created, created_now_closed)}, {day: (closed_count, revenue)}).
    A deleted fact, or a placeholder (no created_day yet), adds nothing."""
    leads, closed = {}, {}
    if fact is None or fact.deleted or fact.created_day is None:
        return leads, closed
    is_closed = fact.status == CLOSED
    leads[(fact.created_day, fact.source)] = (1, 1 if is_closed else 0)
    if is_closed and fact.closed_day is not None:
        closed[fact.closed_day] = (1, Decimal(fact.value))
    return leads, closed


def _subtract(new, old):
    out = {}
    for key in set(new) | set(old):
        a = new.get(key, (0, 0))
        b = old.get(key, (0, 0))
        diff = tuple(x - y for x, y in zip(a, b))
        if any(diff):
            out[key] = diff
    return out


def delta(old, new):
    """The change to the daily tables when a lead's fact goes from `old` to
    `new`: two dicts shaped like `contributions`, without zero entries, in a
    stable (sorted) key order so concurrent writers lock rows in one order."""
    old_leads, old_closed = contributions(old)
    new_leads, new_closed = contributions(new)
    leads = _subtract(new_leads, old_leads)
    closed = _subtract(new_closed, old_closed)
    return dict(sorted(leads.items())), dict(sorted(closed.items()))


def decide(stored, incoming):
    """The fact to keep when `incoming` (a snapshot, or a deletion) meets the
    `stored` one (None or a placeholder when nothing was applied yet).

    A deletion always wins and stays (a tombstone): nothing resurrects it. A
    snapshot older than the stored version is ignored (out of order)."""
    if stored is not None and stored.deleted:
        return stored
    if incoming.deleted:
        return incoming
    if stored is not None and stored.version is not None and incoming.version < stored.version:
        return stored
    return incoming


# ---- reading -----------------------------------------------------------------

def previous_period(start, end):
    """The same number of days just before `start` (clamped at the first date)."""
    days = (end - start).days + 1
    prev_end = start - dt.timedelta(days=1) if start > dt.date.min else dt.date.min
    try:
        prev_start = start - dt.timedelta(days=days)
    except OverflowError:
        prev_start = dt.date.min
    return prev_start, prev_end


def change(current, previous):
    """Percent change, one decimal: 0.0 when both are 0, 100.0 when only the
    previous is 0."""
    current, previous = float(current), float(previous)
    if previous == 0:
        return 0.0 if current == 0 else 100.0
    return round((current - previous) / abs(previous) * 100.0, 1)


def trend(value):
    return "up" if value > 0 else "down" if value < 0 else "flat"


def figure(current, previous):
    c = change(current, previous)
    return {"value": current, "change": c, "trend": trend(c)}


def conversion_rate(created, now_closed):
    return round(100.0 * now_closed / created, 1) if created else 0.0


def bucket_start(day, interval):
    if interval == "day":
        return day
    if interval == "week":
        return day - dt.timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    raise ValueError("interval must be one of %s" % ", ".join(INTERVALS))


def bucket_label(first, interval):
    """`Mon`..`Sun` for a day, `W11` (ISO week number) for a week, `Mar` for a month."""
    if interval == "day":
        return DAY_NAMES[first.weekday()]
    if interval == "week":
        return "W%d" % first.isocalendar()[1]
    return MONTH_NAMES[first.month - 1]


def buckets(start, end, interval):
    """The first day of every bucket touching start..end, in order."""
    out = []
    current = bucket_start(start, interval)
    while current <= end:
        out.append(current)
        try:
            if interval == "day":
                current = current + dt.timedelta(days=1)
            elif interval == "week":
                current = current + dt.timedelta(days=7)
            else:
                current = (current.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        except OverflowError:    # past the last representable date
            break
    return out


def revenue_points(start, end, interval, daily):
    """Chart points from {day: revenue} (days within start..end)."""
    totals = {first: 0.0 for first in buckets(start, end, interval)}
    for day, revenue in daily.items():
        if start <= day <= end:
            totals[bucket_start(day, interval)] += float(revenue)
    return [{"date": first.isoformat(), "label": bucket_label(first, interval),
             "value": round(value, 2)} for first, value in totals.items()]
