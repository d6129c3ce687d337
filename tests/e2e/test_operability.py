"""End to end, what the people running the stack read: the JSON log lines of
every process, joined by the correlation id of the request that caused them
(gateway -> leads -> analytics), no secret in any line, and the Prometheus
metrics of the gateway and of each service."""
import importlib.util
import json
import os
import re
import uuid

import requests

from crm_common.testing import metric_samples, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")
LINE = re.compile(r"^(?P<process>[a-z0-9.]+)\s*\| (?P<json>\{.*\})\s*$")


def stack_module():
    spec = importlib.util.spec_from_file_location("stack", os.path.join(ROOT, "bin", "stack.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def log_entries(stack):
    """(process, entry) of every JSON line the stack's processes wrote."""
    entries = []
    with open(stack.log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = LINE.match(line)
            if match:
                entries.append((match["process"], json.loads(match["json"])))
    return entries


def scrape(url):
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, url
    return metric_samples(r.text)


def named(samples, name, **labels):
    """Samples called `name` whose labels include `labels`."""
    return [v for (n, ls), v in samples.items()
            if n == name and labels.items() <= dict(ls).items()]


def test_a_request_is_followed_by_its_correlation_id_from_the_gateway_to_analytics(stack, api):
    request_id = "e2e-corr-" + uuid.uuid4().hex[:12]
    r = api.post("/api/leads", headers={"X-Request-ID": request_id},
                 json={"name": "Tracey", "email": "tracey.%s@example.com" % request_id[-12:]})
    assert r.status_code == 201 and r.headers["X-Request-ID"] == request_id

    def traced():
        lines = [(p, e) for p, e in log_entries(stack) if e.get("correlation_id") == request_id]
        done = {(p, e.get("entrypoint") or e["logger"]) for p, e in lines}
        wanted = {("gateway", "gateway.access"), ("leads", "create_lead"),
                  ("analytics", "on_lead_created")}
        return lines if wanted <= done else None

    lines = wait_for(traced, timeout=20, what="the request's lines in every process")
    by_step = {(p, e.get("entrypoint") or e["logger"]): e for p, e in lines}
    access = by_step[("gateway", "gateway.access")]
    assert access["route"] == "/api/leads" and access["status"] == 201
    create = by_step[("leads", "create_lead")]
    assert create["kind"] == "rpc" and create["outcome"] == "ok" and create["service"] == "leads"
    handled = by_step[("analytics", "on_lead_created")]
    assert handled["kind"] == "event" and handled["event_type"] == "leads.lead_created"
    assert handled["outcome"] == "ok" and handled["event_id"]
    # one line per request, per RPC, per event handled
    assert sum(1 for p, e in lines if e["logger"] == "gateway.access") == 1
    assert sum(1 for p, e in lines if e.get("entrypoint") == "create_lead") == 1


def test_no_secret_reaches_the_logs(stack, api):
    api.get("/api/settings/config")                     # reads every setting
    requests.get(api.url + "/api/leads", timeout=10, params={"key": api.key})
    secrets = [stack.env[name] for name in ("CRM_API_KEY", "META_ACCESS_TOKEN",
                                            "META_APP_SECRET", "META_VERIFY_TOKEN")]
    with open(stack.log_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    assert text, "the stack logged nothing"
    for secret in secrets:
        assert secret not in text


def test_the_gateway_serves_its_metrics_summed_over_its_workers(stack, api):
    before = scrape(api.url + "/metrics")
    for _ in range(12):                 # several connections: both workers answer some
        assert requests.get(api.url + "/api/leads", timeout=10,
                            headers={"Authorization": "Bearer " + api.key}).status_code == 200
    after = scrape(api.url + "/metrics")
    labels = dict(method="GET", route="/api/leads", status="200")
    # the scrape itself is answered by one worker; every other request is counted
    assert sum(named(after, "crm_http_requests_total", **labels)) - \
        sum(named(before, "crm_http_requests_total", **labels)) == 12
    assert named(after, "crm_http_request_duration_seconds_bucket", method="GET",
                 route="/api/leads", le="+Inf")
    assert named(after, "crm_rpc_client_calls_total", service="leads", method="list_leads",
                 outcome="ok")


def test_every_service_serves_its_metrics_on_its_own_port(stack, api):
    metrics_port = stack_module().metrics_port
    base = int(stack.env["CRM_METRICS_BASE_PORT"])
    # a process restarted by an earlier test starts its counters again: a
    # health check pings each, a new lead goes through leads and analytics
    assert requests.get(api.url + "/api/health", timeout=10).status_code == 200
    assert api.post("/api/leads", json={"name": "Metered",
                                        "email": "m.%s@example.com" % uuid.uuid4().hex[:10]}
                    ).status_code == 201
    for service in SERVICES:
        url = "http://127.0.0.1:%d/metrics" % metrics_port(base, service, 0)
        samples = wait_for(lambda: scrape(url), what="%s's metrics" % service)
        assert named(samples, "crm_entrypoint_calls_total", service=service, entrypoint="ping",
                     kind="rpc", outcome="ok"), service
        assert named(samples, "crm_outbox_backlog", service=service), service
        assert named(samples, "process_resident_memory_bytes"), service
    leads = scrape("http://127.0.0.1:%d/metrics" % metrics_port(base, "leads", 0))
    assert named(leads, "crm_entrypoint_duration_seconds_count", entrypoint="create_lead")
    assert named(leads, "crm_outbox_published_total", service="leads")[0] >= 1
    analytics = "http://127.0.0.1:%d/metrics" % metrics_port(base, "analytics", 0)
    wait_for(lambda: named(scrape(analytics), "crm_entrypoint_calls_total",
                           entrypoint="on_lead_created", kind="event", outcome="ok"),
             what="analytics counting the lead's event")


def test_the_campaigns_service_tells_when_meta_was_last_synced(stack, api, graph):
    from crm_common.contract import seed_graph

    seed_graph(graph)
    r = api.post("/api/campaigns/sync")
    assert r.status_code == 200, r.text
    base = int(stack.env["CRM_METRICS_BASE_PORT"])
    url = "http://127.0.0.1:%d/metrics" % stack_module().metrics_port(base, "campaigns", 0)
    samples = scrape(url)
    [last_ok] = named(samples, "crm_meta_sync_last_success_timestamp_seconds")
    [status_ok] = named(samples, "crm_meta_sync_status", status="ok")
    assert status_ok == 1.0 and last_ok > 0


def test_every_line_of_every_process_is_one_json_object(stack, api):
    api.get("/api/leads")
    with open(stack.log_path, encoding="utf-8", errors="replace") as f:
        lines = [line.rstrip("\n") for line in f]
    processes = [line for line in lines if not line.startswith("[stack]")]
    assert len(processes) > 20
    not_json = []
    for line in processes:
        match = LINE.match(line)
        # a process's line, prefixed with its name; or one of the one-shot
        # commands bin/stack.py runs itself (the queue declarations)
        text = match["json"] if match else line
        try:
            entry = json.loads(text)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not {"ts", "level", "logger", "message"} <= set(entry):
            not_json.append(line)
    assert not not_json, "%d lines are not JSON log entries, e.g.:\n%s" % (
        len(not_json), "\n".join(not_json[:10]))


def test_a_lead_made_by_the_retry_timer_carries_the_webhook_delivery_correlation_id(
        stack, api, graph, meta_app_secret):
    import hashlib
    import hmac
    import time

    leadgen_id = str(uuid.uuid4().int)[:15]
    email = "e2e.timer.%s@example.com" % leadgen_id
    graph.leads[leadgen_id] = {"id": leadgen_id, "created_time": "2024-03-10T10:00:00+0000",
                               "field_data": [{"name": "email", "values": [email]}]}
    # the handler's own attempt meets a Graph API that is away (a 503, one
    # attempt per process turn); the timer's retry makes the lead
    graph.fail_next.append((503, {"error": {"message": "Service unavailable", "code": 2}}))
    raw = json.dumps({"object": "page", "entry": [{"id": "9001", "time": int(time.time()),
                      "changes": [{"field": "leadgen", "value": {
                          "leadgen_id": leadgen_id, "page_id": "9001"}}]}]}).encode()
    request_id = "e2e-hook-" + uuid.uuid4().hex[:12]
    r = requests.post(api.url + "/api/webhooks/meta", data=raw, timeout=10, headers={
        "Content-Type": "application/json", "X-Request-ID": request_id,
        "X-Hub-Signature-256": "sha256=" + hmac.new(meta_app_secret.encode(), raw,
                                                     hashlib.sha256).hexdigest()})
    assert r.status_code == 200
    wait_for(lambda: api.get("/api/leads", params={"search": email}).json(), timeout=30,
             what="the lead made by the retry")
    assert sum(1 for path, _ in list(graph.requests) if path.endswith("/" + leadgen_id)) >= 2

    def traced():
        mine = [(p, e) for p, e in log_entries(stack) if e.get("correlation_id") == request_id]
        steps = {(p, e.get("entrypoint")) for p, e in mine}
        return mine if ("analytics", "on_lead_created") in steps else None

    mine = wait_for(traced, timeout=20, what="analytics' line for the timer's lead")
    steps = {(p, e.get("entrypoint")) for p, e in mine}
    assert ("leads", "receive_lead_ads") in steps
    # the failed first attempt, and the timer's successful one, under the same id
    assert any(e["level"] == "warning" and leadgen_id in e["message"] for p, e in mine)
