"""End to end: a signed Meta delivery through the gateway and the durable
queue to one lead, fetched from the (fake) Graph API, and pushed on nothing
but events; a kill of the leads process between the 200 and the fetch loses
nothing."""
import hashlib
import hmac
import json
import os
import signal
import time
import uuid

import requests

from crm_common.testing import wait_for


def new_id():
    return str(uuid.uuid4().int)[:15]


def post_delivery(api, secret, *leadgen_ids):
    raw = json.dumps({"object": "page", "entry": [{"id": "9001", "time": int(time.time()),
                      "changes": [{"field": "leadgen", "value": {
                          "leadgen_id": lid, "page_id": "9001", "form_id": "555", "ad_id": "666",
                          "created_time": int(time.time())}} for lid in leadgen_ids]}]}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return requests.post(api.url + "/api/webhooks/meta", data=raw, timeout=10, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": signature})


def graph_lead(graph, **answers):
    lid = new_id()
    graph.leads[lid] = {"id": lid, "created_time": "2024-03-10T10:00:00+0000", "form_id": "555",
                        "ad_id": "666", "campaign_id": "777",
                        "field_data": [{"name": k, "values": [v]} for k, v in answers.items()]}
    return lid


def found(api, email):
    r = api.get("/api/leads", params={"search": email})
    return r.json() if r.status_code == 200 else []        # 503 while leads restarts


def test_a_signed_delivery_becomes_a_lead(api, graph, meta_app_secret):
    email = "e2e.fb.%s@example.com" % uuid.uuid4().hex[:10]
    lid = graph_lead(graph, full_name="Alice Johnson", email=email, job_title="CTO")
    started = time.monotonic()
    r = post_delivery(api, meta_app_secret, lid)
    assert r.status_code == 200 and r.json() == {"received": 1}
    assert time.monotonic() - started < 1.0
    [lead] = wait_for(lambda: found(api, email), what="the webhook lead")
    assert lead["source"] == "Facebook Ad" and lead["jobTitle"] == "CTO"
    assert lead["metaLeadAd"]["leadgenId"] == lid
    assert post_delivery(api, "forged", lid).status_code == 403


def test_a_leads_process_killed_between_the_200_and_the_fetch_loses_nothing(
        stack, api, graph, meta_app_secret):
    email = "e2e.kill.%s@example.com" % uuid.uuid4().hex[:10]
    lid = graph_lead(graph, full_name="Resilient Rita", email=email)
    graph.delay = 5.0                    # the fetch is under way when the process dies
    try:
        assert post_delivery(api, meta_app_secret, lid).status_code == 200
        wait_for(lambda: graph.seen("/" + lid), what="the fetch to start")
        [pid] = stack.service_pids("leads")
        os.kill(pid, signal.SIGKILL)
    finally:
        graph.delay = 0.0
    [lead] = wait_for(lambda: found(api, email), timeout=60, every=0.5,
                      what="the lead after the restart")
    assert lead["name"] == "Resilient Rita"
    assert stack.service_pids("leads") != [pid]
