"""The test-only fault point of reliable event handlers (docs/faults.md):
inert unless asked, exact when asked, and once per marker file."""
import json
from types import SimpleNamespace

import pytest

from crm_common import reliable_events
from crm_common.reliable_events import crash_point

QUEUE = "evt-leads-lead_created--analytics.on_lead_created"


class Exited(Exception):
    pass


@pytest.fixture
def exits(monkeypatch):
    codes = []

    def fake_exit(code):
        codes.append(code)
        raise Exited()

    monkeypatch.setattr(reliable_events.os, "_exit", fake_exit)
    monkeypatch.setattr(reliable_events, "_fault_hits", 0)
    for name in ("CRM_FAULT_CRASH", "CRM_FAULT_MARKER", "CRM_FAULT_CRASH_AFTER"):
        monkeypatch.delenv(name, raising=False)
    return codes


def message(event_id="e-1"):
    return SimpleNamespace(payload={"event_id": event_id})


def test_nothing_happens_unless_the_environment_names_the_point(exits, monkeypatch, tmp_path):
    crash_point("reliable_events.before_ack", QUEUE, message())
    monkeypatch.setenv("CRM_FAULT_CRASH", "reliable_events.before_ack")
    crash_point("reliable_events.before_ack", QUEUE, message())       # no marker: inert
    monkeypatch.setenv("CRM_FAULT_MARKER", str(tmp_path / "crashed"))
    crash_point("reliable_events.elsewhere", QUEUE, message())
    monkeypatch.setenv("CRM_FAULT_CRASH", "reliable_events.before_ack:--tasks.")
    crash_point("reliable_events.before_ack", QUEUE, message())       # another queue
    assert exits == [] and not (tmp_path / "crashed").exists()


def test_the_nth_match_exits_once_and_leaves_a_marker(exits, monkeypatch, tmp_path):
    marker = tmp_path / "crashed"
    monkeypatch.setenv("CRM_FAULT_CRASH", "reliable_events.before_ack:--analytics.")
    monkeypatch.setenv("CRM_FAULT_MARKER", str(marker))
    monkeypatch.setenv("CRM_FAULT_CRASH_AFTER", "2")
    crash_point("reliable_events.before_ack", QUEUE, message("e-1"))
    with pytest.raises(Exited):
        crash_point("reliable_events.before_ack", QUEUE, message("e-2"))
    assert exits == [70]
    assert json.loads(marker.read_text())["event_id"] == "e-2"
    monkeypatch.setattr(reliable_events, "_fault_hits", 0)    # a restarted process
    for n in range(3):
        crash_point("reliable_events.before_ack", QUEUE, message("e-3"))
    assert exits == [70]
