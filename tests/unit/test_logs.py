"""The JSON log lines every process writes."""
import json
import logging

from crm_common.logs import JsonFormatter


def record(name, level, msg, exc=False):
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, __file__, 1, msg, (), exc_info)


def test_a_line_is_one_json_object_with_the_request_fields():
    r = record("gateway.access", logging.INFO, "GET /api/leads 200")
    r.request_id, r.status = "abc", 200
    line = json.loads(JsonFormatter().format(r))
    assert line["message"] == "GET /api/leads 200" and line["request_id"] == "abc"
    assert line["level"] == "info" and line["ts"].endswith("Z")


def test_unexpected_errors_keep_their_traceback():
    line = json.loads(JsonFormatter().format(record("x", logging.ERROR, "failed", exc=True)))
    assert "ValueError: boom" in line["exception"]


def test_declared_business_errors_are_logged_as_info_without_a_traceback():
    r = record("nameko.containers", logging.WARNING,
               "(expected) error handling worker <leads.get_lead>: No lead with this id.", exc=True)
    line = json.loads(JsonFormatter().format(r))
    assert line["level"] == "info" and "exception" not in line
