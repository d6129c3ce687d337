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


def test_secrets_are_redacted_in_the_message_the_error_and_the_traceback():
    formatter = JsonFormatter(secrets=["s3cr3t-app-value"])
    r = record("x", logging.ERROR, "GET https://graph.facebook.com/v21.0/1?fields=a&access_token="
               "EAAB123&after=2 with Authorization: Bearer crm_abcdef0123 via "
               "amqp://guest:hunter22@rabbit:5672// (secret s3cr3t-app-value)", exc=True)
    r.error = "ValueError: appsecret_proof=deadbeef"
    line = formatter.format(r)
    for secret in ("EAAB123", "crm_abcdef0123", "hunter22", "s3cr3t-app-value", "deadbeef"):
        assert secret not in line
    entry = json.loads(line)
    assert "access_token=[redacted]&after=2" in entry["message"]
    assert "amqp://guest:[redacted]@rabbit" in entry["message"]


def test_the_secret_settings_come_from_the_environment():
    from crm_common.logs import secret_values

    env = {"META_APP_SECRET": "app-secret-123", "CRM_API_KEY": "crm_key_456",
           "META_VERIFY_TOKEN": "x", "CRM_PORT": "8000"}
    # too short a value would redact ordinary words; other settings are not secrets
    assert secret_values(env) == ["app-secret-123", "crm_key_456"]


def test_bound_fields_are_on_every_line_until_unbound():
    from crm_common import logs

    formatter = JsonFormatter(secrets=())
    with logs.bound(correlation_id="req-1", service="leads"):
        inside = json.loads(formatter.format(record("x", logging.INFO, "inside")))
        own = record("x", logging.INFO, "own")
        own.correlation_id = "req-2"            # a record's own field wins
        assert json.loads(formatter.format(own))["correlation_id"] == "req-2"
    outside = json.loads(formatter.format(record("x", logging.INFO, "outside")))
    assert inside["correlation_id"] == "req-1" and inside["service"] == "leads"
    assert "correlation_id" not in outside
