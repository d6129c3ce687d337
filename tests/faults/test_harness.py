"""The fault suite's judge, on made-up records: what counts as lost, as
duplicated, and what the dashboard recount gives (docs/faults.md)."""
import datetime as dt
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Call, Recorder, Verdict, Write, acceptable, count_items,  # noqa: E402
                     recount, summarize)


def write(seq, outcome, kind="status", marker="m1", **fields):
    status = {"acked": 200, "refused": 409, "uncertain": 503}[outcome]
    return Write(kind, marker, seq, outcome, status, fields=fields)


def test_a_field_ends_as_the_last_acked_write_or_a_later_uncertain_one():
    writes = [write(1, "acked", status="new"), write(2, "uncertain", status="qualified"),
              write(3, "acked", status="contacted"), write(4, "uncertain", status="closed"),
              write(5, "refused", status="proposal")]
    assert acceptable(writes, "status") == {"contacted", "closed"}
    # an uncertain write sent before the last acked one may not win over it
    assert "qualified" not in acceptable(writes, "status")
    assert acceptable(writes, "value") == set()


def test_missing_acked_items_are_lost_and_any_item_stored_twice_is_duplicated():
    verdict = Verdict()
    writes = [write(1, "acked", kind="task", marker="a"),
              write(2, "acked", kind="task", marker="b"),
              write(3, "uncertain", kind="task", marker="c"),
              write(4, "uncertain", kind="task", marker="d"),
              write(5, "refused", kind="task", marker="e")]
    stored = Counter({"Task a": 1, "Task b": 2, "Task c": 0, "Task d": 2, "Task e": 1})
    count_items(verdict, writes, stored, "Task %s", "task")
    assert verdict.lost == []
    assert [d.split()[1] for d in verdict.duplicated] == ["b", "d"]
    assert len(verdict.failures) == 1 and "refused" in verdict.failures[0]
    verdict = Verdict()
    count_items(verdict, writes[:1], Counter(), "Task %s", "task")
    assert len(verdict.lost) == 1


def lead(created, status="new", value=0.0, closed=None, source="Manual"):
    return {"createdAt": created + "T10:00:00.000Z", "status": status, "value": value,
            "closedAt": closed and closed + "T11:00:00.000Z",
            "updatedAt": created + "T12:00:00.000Z",
            "source": source}


def test_the_recount_follows_the_contract():
    start, end = dt.date(2024, 3, 1), dt.date(2024, 3, 30)
    leads = [lead("2024-03-02", "closed", 100.0, "2024-03-05", "Website"),
             lead("2024-03-03", "closed", 50.5, "2024-04-02"),      # closed after the range
             lead("2024-03-04"),
             lead("2024-02-10", "closed", 30.0, "2024-02-11"),      # the previous period
             lead("2024-02-12")]
    got = recount(leads, start, end)
    stats = got["stats"]
    assert stats["revenue"] == {"value": 100.0, "change": 233.3, "trend": "up"}
    assert stats["active_leads"]["value"] == 3      # 5 created by the end, 2 closed by then
    assert stats["active_leads"]["change"] == 200.0  # 1 active at the previous end
    assert stats["conversion_rate"]["value"] == 66.7  # 2 of the 3 created in range are closed now
    assert stats["link_clicks"] == {"value": 0, "change": 0.0, "trend": "flat"}
    assert len(got["revenue"]) == 30 and got["revenue"][4] == {"date": "2024-03-05", "value": 100.0}
    assert got["sources"] == [{"name": "Manual", "value": 2}, {"name": "Website", "value": 1}]


def test_a_500_or_a_slow_answer_fails_the_verdict():
    recorder = Recorder()
    recorder.calls = [Call(0.0, 0.1, "GET", "GET /api/leads", "leads", 200, False),
                      Call(1.0, 0.2, "GET", "GET /api/leads", "leads", 503, True)]
    assert summarize("s", recorder, Verdict(), max_time_bound=4).verdict == "PASS"
    recorder.calls.append(Call(2.0, 0.1, "GET", "GET /api/tasks", "tasks", 500, False))
    assert summarize("s", recorder, Verdict(), max_time_bound=4).verdict == "FAIL"
    recorder.calls[-1] = Call(2.0, 5.0, "GET", "GET /api/tasks", "tasks", 200, False)
    assert summarize("s", recorder, Verdict(), max_time_bound=4).verdict == "FAIL"
    recorder.calls[-1] = Call(2.0, 0.1, "GET", "GET /api/tasks", "tasks", 503, False)
    assert summarize("s", recorder, Verdict(), max_time_bound=4).verdict == "FAIL"  # no Retry-After
