"""docs/asyncapi.yaml is true: the whole stack, driven over HTTP until it
has published every documented event, publishes nothing the document does
not describe (payload, headers, AMQP properties, exchange), and every event
the code can publish is in the document."""
import json
import os
import re
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from crm_common.asyncapi import EventDocument
from crm_common.contract import AD_ACCOUNT, seed_graph, sign, stack_env
from crm_common.fake_graph import FakeGraph
from crm_common.testing import RunningStack, delete_vhost, drop_databases

ROOT = Path(__file__).resolve().parents[2]
# Every process that could publish; analytics publishes nothing, and a tap
# on its exchange proves it.
SOURCES = ("leads", "contacts", "tasks", "campaigns", "analytics", "gateway")
GATEWAY_CALL = "gateway.http."
# A Meta campaign with insights but missing from Meta's campaign list.
UNLISTED_CAMPAIGN = "120000009999"


@pytest.fixture(scope="module")
def meta_graph():
    graph = FakeGraph(token="graph-" + secrets.token_hex(8), account=AD_ACCOUNT)
    seed_graph(graph, campaigns=2, days=2)
    graph.insights.append({"campaign_id": UNLISTED_CAMPAIGN, "date_start": "2024-03-01",
                           "date_stop": "2024-03-01", "spend": "3.20", "impressions": "100",
                           "clicks": "4"})
    yield graph
    graph.stop()


@pytest.fixture(scope="module")
def crm(meta_graph, tmp_path_factory):
    """A stack of its own, with an ad account: the package's stack has none,
    so it cannot sync campaigns (campaigns.campaign_synced)."""
    prefix = os.environ["CRM_DB_PREFIX"] + "_asyncapi"
    # no metrics ports: they would clash with another stack's (the package's)
    env = dict(stack_env(prefix, meta_graph), CRM_METRICS_BASE_PORT="0")
    log = tmp_path_factory.mktemp("asyncapi") / "stack.log"
    stack = RunningStack(env, sys.executable, log_path=str(log)).start()
    yield stack
    stack.stop()
    drop_databases(env["DATABASE_URL"], prefix)
    delete_vhost(prefix)


@pytest.fixture(scope="module")
def amqp_uri(crm):
    """The root `event_tap` listens on this module's stack."""
    return crm.env["AMQP_URI"]


@dataclass
class Published:
    """One message as a tap on `<source>.events` received it."""
    source: str
    exchange: str
    event_type: str         # its routing key
    body: dict
    headers: dict
    content_type: str
    content_encoding: str
    delivery_mode: int

    def describe(self):
        body = json.dumps(self.body, sort_keys=True)       # `changes` before `lead`
        return "%s.%s %s" % (self.source, self.event_type, body[:500])


def recorder(published, source):
    """A kombu callback beside the tap's own (which acks): keeps what the tap
    does not, the message's properties."""
    def on_message(body, message):
        published.append(Published(
            source, message.delivery_info.get("exchange"), message.delivery_info.get("routing_key"),
            body, message.headers, message.content_type, message.content_encoding,
            message.properties.get("delivery_mode")))
    return on_message


class Client:
    """The stack's HTTP API; each request sends an X-Request-ID of its own,
    kept in `request_ids` (the root of what it causes)."""

    def __init__(self, stack):
        self.url, self.key = stack.url, stack.env["CRM_API_KEY"]
        self.http = requests.Session()
        self.request_ids = set()

    def call(self, method, path, status, **kwargs):
        request_id = "asyncapi-" + uuid.uuid4().hex[:16]
        self.request_ids.add(request_id)
        headers = {"Authorization": "Bearer " + self.key, "X-Request-ID": request_id,
                   **kwargs.pop("headers", {})}
        answer = self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        assert answer.status_code == status, "%s %s: %s %s" % (method, path, answer.status_code,
                                                               answer.text)
        return answer.json() if answer.content else None

    def post(self, path, body=None, status=201):
        return self.call("POST", path, status, json=body)

    def patch(self, path, body):
        return self.call("PATCH", path, 200, json=body)

    def delete(self, path):
        return self.call("DELETE", path, 204)


def graph_lead(graph, **answers):
    leadgen_id = str(uuid.uuid4().int)[:15]
    graph.leads[leadgen_id] = {
        "id": leadgen_id, "created_time": "2024-03-10T10:00:00+0000", "form_id": "555",
        "ad_id": "666", "campaign_id": "777",
        "field_data": [{"name": k, "values": [v]} for k, v in answers.items()]}
    return leadgen_id


def publish_every_event(client, graph, app_secret):
    """Drive the stack through every kind of change; returns what must have
    been published before the taps are read: (what, predicate) pairs."""
    tag = uuid.uuid4().hex[:8]
    # leads: created, changed, status changed (closed: closedAt), an activity
    ada = client.post("/api/leads", {"name": "Ada", "email": "ada.%s@example.com" % tag,
                                     "company": "Acme", "value": 1200.5})
    client.patch("/api/leads/" + ada["id"], {"jobTitle": "CTO", "ownerId": "user-1"})
    client.patch("/api/leads/" + ada["id"], {"status": "closed"})
    client.post("/api/leads/%s/activity" % ada["id"], {"type": "call", "title": "Intro call"})

    # tasks: on the lead, one completed (kept), one open (deleted with the lead)
    done = client.post("/api/tasks", {"title": "Send the deck", "relatedToType": "lead",
                                      "relatedToId": ada["id"], "dueDate": "2030-01-01T09:30:00Z"})
    client.patch("/api/tasks/" + done["id"], {"priority": "high"})
    client.patch("/api/tasks/" + done["id"], {"completed": True})
    left_open = client.post("/api/tasks", {"title": "Call back", "relatedToType": "lead",
                                           "relatedToId": ada["id"], "dueDate": "2030-01-02"})
    general = client.post("/api/tasks", {"title": "Tidy up"})
    client.delete("/api/tasks/" + general["id"])

    # contacts: a conversion makes one; another links the contact with the lead's email
    client.post("/api/leads/%s/convert" % ada["id"])
    bob = client.post("/api/contacts", {"name": "Bob", "email": "bob.%s@example.com" % tag,
                                        "notes": "met at a fair"})
    bob_lead = client.post("/api/leads", {"name": "Bob", "email": bob["email"]})
    client.post("/api/leads/%s/convert" % bob_lead["id"], status=200)
    client.patch("/api/contacts/" + bob["id"], {"role": "Buyer", "phone": "+1 555 0100"})
    client.post("/api/contacts/%s/history" % bob["id"], {"type": "meeting", "title": "Lunch"})
    client.delete("/api/contacts/" + bob["id"])
    client.delete("/api/leads/" + ada["id"])

    # campaigns: the first sync (listed campaigns, and one known only from insights)
    client.post("/api/campaigns/sync", status=200)

    # Meta lead ads: one delivery, a new person and one already a lead
    carol = client.post("/api/leads", {"name": "Carol", "email": "carol.%s@example.com" % tag})
    grace_email = "grace.%s@example.com" % tag
    new_person = graph_lead(graph, full_name="Grace Hopper", email=grace_email)
    known_person = graph_lead(graph, full_name="Carol", email=carol["email"])
    # no page_id in the values: the gateway adds the entry's id
    changes = [{"field": "leadgen", "value": {"leadgen_id": lid, "form_id": "555",
                                              "created_time": int(time.time())}}
               for lid in (new_person, known_person)]
    raw = json.dumps({"object": "page", "entry": [{"id": "9001", "time": int(time.time()),
                                                   "changes": changes}]}).encode()
    client.call("POST", "/api/webhooks/meta", 200, data=raw, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign(app_secret, raw)})

    def event(source, event_type, test=lambda body: True):
        return lambda m: (m.source, m.event_type) == (source, event_type) and test(m.body)

    return [
        ("the open task deleted with its lead",
         event("tasks", "task_deleted", lambda b: b["task"]["id"] == left_open["id"])),
        ("the unlisted campaign's placeholder",
         event("campaigns", "campaign_synced",
               lambda b: b["campaign"]["metaCampaignId"] == UNLISTED_CAMPAIGN)),
        ("the lead-ad lead", event("leads", "lead_created",
                                   lambda b: b["lead"]["email"] == grace_email)),
        ("the lead-ad submission noted on a lead",
         event("leads", "lead_updated", lambda b: b["lead"]["id"] == carol["id"])),
    ]


def drain(taps):
    for tap in taps:
        tap.drain(0.05)


def collect(taps, published, documented, expected, timeout=60.0, quiet=1.5):
    """Read the taps until every documented event and every `expected` one
    was seen, then until nothing more came for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        drain(taps)
        missing = (documented - {(m.source, m.event_type) for m in published}) | {
            what for what, seen in expected if not any(seen(m) for m in published)}
        if not missing:
            break
        assert time.monotonic() < deadline, "not published within %.0f s: %s" % (
            timeout, sorted(map(str, missing)))
    count, last_change = len(published), time.monotonic()
    while time.monotonic() - last_change < quiet:
        drain(taps)
        if len(published) != count:
            count, last_change = len(published), time.monotonic()


def caused_by(message, request_ids):
    """Whether the message's call-id stack starts where the document says:
    at one of this test's requests (or, for a lead made from a lead ad, maybe
    at the leads service's timer that retries submissions), and its
    correlation id names the request (the webhook delivery's, for those)."""
    root = message.headers["nameko.call_id_stack"][0]
    correlation_id = message.headers["nameko.correlation_id"]
    if root.startswith(GATEWAY_CALL):
        request_id = root[len(GATEWAY_CALL):]
        return request_id in request_ids and correlation_id == request_id
    # the timer made the lead of a submission: under the delivery's id
    return (message.source == "leads" and root.startswith("leads.fetch_due_lead_ads.")
            and correlation_id in request_ids)


def test_every_published_event_is_as_documented(crm, meta_graph, event_tap):
    doc = EventDocument()
    published = []
    taps = []
    for source in SOURCES:
        tap = event_tap(source)
        tap.consumer.register_callback(recorder(published, source))
        taps.append(tap)
    client = Client(crm)

    expected = publish_every_event(client, meta_graph, crm.env["META_APP_SECRET"])
    collect(taps, published, doc.documented(), expected)

    problems = []
    for message in published:
        found = doc.problems(message.source, message.event_type, message.body, message.headers)
        event = doc.events.get((message.source, message.event_type))
        if event is not None:
            promised = (event.exchange["name"], event.content_type, event.content_encoding,
                        event.delivery_mode)
            actual = (message.exchange, message.content_type, message.content_encoding,
                      message.delivery_mode)
            if actual != promised:
                found.append("exchange, content type, encoding, delivery mode: %s, documented %s"
                             % (actual, promised))
            if not found and not caused_by(message, client.request_ids):
                found.append("call-id stack %s does not start at the request that caused it"
                             % message.headers["nameko.call_id_stack"])
        problems += ["%s\n    in %s" % (p, message.describe()) for p in found]
    assert not problems, "%d of %d messages break docs/asyncapi.yaml:\n%s" % (
        len({p.split("\n")[1] for p in problems}), len(published), "\n".join(problems))
    assert {(m.source, m.event_type) for m in published} == doc.documented()


# -- the code's events are the document's ------------------------------------------
EMIT_CALL = re.compile(r"\.emit\(")
EMIT_LITERAL = re.compile(r"""\btx\.emit\(\s*["'](\w+)["']""")
DISPATCH_CALL = re.compile(r"\.dispatch\(")
DISPATCH_CONSTANTS = re.compile(r"\.dispatch\(\s*EVENT_SOURCE\s*,\s*EVENT_TYPE\b")
CONSTANT = re.compile(r"""^EVENT_(SOURCE|TYPE)\s*=\s*["'](\w+)["']""", re.M)


def events_in_the_code():
    """{(source, event_type)} that the services' code can publish: each
    `tx.emit("<type>", ...)` of a service's package (source: the service),
    and each `.dispatch(EVENT_SOURCE, EVENT_TYPE, ...)` with the constants of
    its module. An event under a name the scan cannot read is an error: it
    could not be checked against the document."""
    found, unreadable = set(), []
    for package in sorted(ROOT.glob("services/*/*/__init__.py")):
        service = package.parent.parent.name
        if package.parent.name != service:
            continue                # tests/, alembic/: not the service's code
        for path in sorted(package.parent.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            where = path.relative_to(ROOT)
            if "EventDispatcher" in text:
                unreadable.append("%s: nameko's EventDispatcher bypasses the outbox" % where)
            emits = EMIT_LITERAL.findall(text)
            if len(emits) != len(EMIT_CALL.findall(text)):
                unreadable.append("%s: an emit() whose event type is not a literal" % where)
            found |= {(service, name) for name in emits}
            dispatches = len(DISPATCH_CALL.findall(text))
            constants = dict(CONSTANT.findall(text))
            if dispatches and (len(DISPATCH_CONSTANTS.findall(text)) != dispatches
                               or set(constants) != {"SOURCE", "TYPE"}):
                unreadable.append("%s: a dispatch() not of EVENT_SOURCE, EVENT_TYPE" % where)
            elif dispatches:
                found.add((constants["SOURCE"], constants["TYPE"]))
    assert not unreadable, unreadable
    return found


def test_every_event_the_code_publishes_is_documented():
    in_code = events_in_the_code()
    documented = EventDocument().documented()
    assert in_code - documented == set(), "published but not in docs/asyncapi.yaml"
    assert documented - in_code == set(), "in docs/asyncapi.yaml but published by no code"
