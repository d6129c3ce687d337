"""The fault suite's fast piece, run by `make test`: scenario 6 of
`make faults` (docs/faults.md) with a short load. An analytics consumer
exits between handling an event and acking it (an exact fault point, not a
lucky kill); the event comes back to the restarted process and counts once:
every acknowledged write is there and the dashboard equals a recount."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenarios import Options, crash_before_ack  # noqa: E402

pytestmark = pytest.mark.needs_services


def test_an_event_redelivered_after_a_crash_before_its_ack_counts_once():
    result = crash_before_ack(Options(threads=3, settle=1.0), seconds=2.0, crash_after=3,
                              prefix=os.environ["CRM_DB_PREFIX"] + "_faults")
    assert result.verdict == "PASS", "\n".join(result.failures + result.notes)
    assert result.acked > 0 and result.lost == 0 and result.duplicated == 0
