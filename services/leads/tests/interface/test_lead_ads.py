"""Meta lead ads in the leads service: from the gateway's queued delivery to
exactly one lead, against real PostgreSQL, the real broker and a fake Graph
API over real HTTP."""
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from crm_common.fake_graph import FakeGraph
from crm_common.testing import database_engine, entrypoint_caller, publish_event, wait_for
from leads.exceptions import InvalidLead
from leads.service import LeadsService

TOKEN = "tok"


@pytest.fixture
def graph():
    fake = FakeGraph(token=TOKEN)
    yield fake
    fake.stop()


@pytest.fixture
def lead_ads_config(service_config, graph):
    return dict(service_config, META_GRAPH_URL=graph.url, META_ACCESS_TOKEN=TOKEN,
                META_LEAD_RETRY_BACKOFF="0.2", META_LEAD_MAX_BACKOFF="1",
                META_LEAD_MAX_ATTEMPTS="4", META_LEAD_CLAIM_SECONDS="2")


@pytest.fixture
def container(container_factory, lead_ads_config):
    container = container_factory(LeadsService, lead_ads_config)
    container.start()
    return container


@pytest.fixture
def call(container):
    return entrypoint_caller(container)


def new_id():
    return str(uuid.uuid4().int)[:15]


def new_email(tag="fb"):
    return "%s.%s@Example.com" % (tag, uuid.uuid4().hex[:10])


def graph_lead(graph, leadgen_id=None, **answers):
    leadgen_id = leadgen_id or new_id()
    graph.leads[leadgen_id] = {
        "id": leadgen_id, "created_time": "2024-03-10T10:00:00+0000", "form_id": "555",
        "ad_id": "666", "campaign_id": "777",
        "field_data": [{"name": k, "values": [v]} for k, v in answers.items()]}
    return leadgen_id


def deliver(amqp_uri, *leadgen_ids, page="9001"):
    """What the gateway queues for a signed delivery (ids as Meta sent them)."""
    publish_event(amqp_uri, "gateway", "meta_leadgen_received", {
        "object": "page", "changes": [{"leadgen_id": lid, "page_id": page, "form_id": "555",
                                       "ad_id": "666", "created_time": 1710064800}
                                      for lid in leadgen_ids]})


def leads_with(call, email):
    return call("list_leads", {"search": email.lower()})["items"]


def submission(call, leadgen_id):
    found = [s for s in call("list_lead_ads", None, 1000)["items"]
             if s["leadgenId"] == str(leadgen_id)]
    return found[0] if found else None


def test_a_delivery_makes_one_facebook_lead_with_its_meta_ids(call, graph, amqp_uri, event_tap):
    events = event_tap("leads", "lead_created")
    email = new_email()
    lid = graph_lead(graph, full_name="Alice Johnson", email=email, phone_number="+15550100",
                     company_name="Acme", job_title="CTO", budget="10k")
    deliver(amqp_uri, lid)
    [lead] = wait_for(lambda: leads_with(call, email), what="the lead")
    assert (lead["name"], lead["email"], lead["phone"], lead["company"], lead["jobTitle"]) == \
        ("Alice Johnson", email.lower(), "+15550100", "Acme", "CTO")
    assert lead["source"] == "Facebook Ad" and lead["status"] == "new"
    assert lead["metaLeadAd"] == {"leadgenId": lid, "formId": "555", "adId": "666",
                                  "campaignId": "777", "pageId": "9001"}
    assert lead["createdAt"] == "2024-03-10T10:00:00.000Z"      # when the person submitted
    [note] = call("list_activity", lead["id"])["items"]
    assert note["type"] == "note_created" and "form 555" in note["description"]
    assert "budget: 10k" in note["description"]
    assert lead["lastInteractionAt"] == note["timestamp"]
    [(path, query)] = [(p, q) for p, q in graph.requests if p.endswith("/" + lid)]
    assert set(query["fields"].split(",")) == {"field_data", "created_time", "ad_id", "form_id",
                                               "campaign_id"}
    assert "access_token" not in query                     # the token goes in a header
    _, body = events.wait(lambda k, b: b["lead"]["id"] == lead["id"])
    assert body["lead"] == lead
    done = submission(call, lid)
    assert (done["status"], done["outcome"], done["leadId"], done["attempts"]) == \
        ("done", "created", lead["id"], 1)


def test_numeric_ids_and_first_plus_last_name(call, graph, amqp_uri):
    email = new_email()
    lid = graph_lead(graph, first_name="Dana", last_name="Scully", email=email)
    publish_event(amqp_uri, "gateway", "meta_leadgen_received", {
        "changes": [{"leadgen_id": int(lid), "page_id": 9001, "form_id": 555, "ad_id": 666}]})
    [lead] = wait_for(lambda: leads_with(call, email), what="the lead")
    assert lead["name"] == "Dana Scully"
    assert lead["metaLeadAd"]["leadgenId"] == lid and lead["metaLeadAd"]["pageId"] == "9001"


def test_several_leads_in_one_delivery(call, graph, amqp_uri):
    emails = [new_email("batch") for _ in range(3)]
    ids = [graph_lead(graph, full_name="Batch %d" % i, email=e) for i, e in enumerate(emails)]
    deliver(amqp_uri, *ids)
    for email in emails:
        wait_for(lambda: leads_with(call, email), what="every lead of the batch")
    assert {submission(call, lid)["status"] for lid in ids} == {"done"}


def test_redeliveries_racing_over_two_instances_make_one_lead_and_one_note(
        container_factory, lead_ads_config, container, call, graph, amqp_uri, event_tap):
    second = container_factory(LeadsService, lead_ads_config)
    second.start()
    events = event_tap("leads")
    email = new_email("dup")
    lid = graph_lead(graph, full_name="Dana Scully", email=email)
    graph.delay = 0.2                      # widen the window in which they overlap
    threads = [threading.Thread(target=deliver, args=(amqp_uri, lid)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [lead] = wait_for(lambda: leads_with(call, email), what="the lead")
    time.sleep(1.5)                        # let every redelivery be handled
    assert len(leads_with(call, email)) == 1
    assert len(call("list_activity", lead["id"])["items"]) == 1
    assert len(graph.seen("/" + lid)) == 1                   # fetched once
    events.wait(lambda k, b: k == "lead_created" and b["lead"]["id"] == lead["id"])
    for _ in range(10):
        events.drain(0.1)
    created = [b for k, b, _ in events.events
               if k == "lead_created" and b["lead"]["id"] == lead["id"]]
    assert len(created) == 1


def test_a_known_email_gets_a_note_and_no_duplicate(call, graph, amqp_uri):
    email = new_email("known")
    first = call("create_lead", {"name": "Known", "email": email, "phone": "+1"})
    lid = graph_lead(graph, full_name="Known Again", email=email.upper(), phone_number="+2")
    deliver(amqp_uri, lid)
    wait_for(lambda: call("list_activity", first["id"])["items"], what="a note on the lead")
    [note] = call("list_activity", first["id"])["items"]
    assert note["type"] == "note_created" and "already belonged" in note["description"]
    [lead] = leads_with(call, email)
    assert lead["id"] == first["id"] and lead["name"] == "Known" and lead["phone"] == "+1"
    assert lead["lastInteractionAt"] == note["timestamp"]
    assert submission(call, lid)["outcome"] == "matched"
    deliver(amqp_uri, lid)                                   # Meta delivers it again
    time.sleep(1.0)
    assert len(call("list_activity", first["id"])["items"]) == 1


def test_a_graph_outage_that_recovers_is_retried_with_backoff(call, graph, amqp_uri):
    email = new_email("outage")
    lid = graph_lead(graph, full_name="Patient Pat", email=email)
    outage = (503, {"error": {"message": "Service temporarily unavailable", "code": 2,
                              "is_transient": True}})
    graph.fail_next.extend([outage, outage, (500, b"<html>oops</html>")])
    deliver(amqp_uri, lid)
    [lead] = wait_for(lambda: leads_with(call, email), timeout=20, what="the lead after retries")
    assert lead["name"] == "Patient Pat"
    done = submission(call, lid)
    assert done["status"] == "done" and done["attempts"] == 4 and done["lastError"] is None


def test_a_submission_that_cannot_be_fetched_stays_failed_and_listed_until_retried(
        call, graph, amqp_uri):
    email = new_email("late")
    lid = new_id()                       # not on the Graph API yet: code 100 is a refusal
    deliver(amqp_uri, lid)
    failed = wait_for(lambda: (submission(call, lid) or {}).get("status") == "failed"
                      and submission(call, lid), what="the failed submission")
    assert "Unsupported get request" in failed["lastError"] and failed["attempts"] == 1
    assert lid in [s["leadgenId"] for s in call("list_lead_ads", "failed")["items"]]
    assert leads_with(call, email) == []

    graph_lead(graph, lid, full_name="Late Larry", email=email)
    assert call("retry_failed_lead_ads", [lid]) == [lid]
    [lead] = wait_for(lambda: leads_with(call, email), what="the lead after the retry")
    assert lead["name"] == "Late Larry"
    assert call("retry_failed_lead_ads", [lid]) == []        # done: nothing to retry


def test_transient_failures_stop_after_the_last_attempt(call, graph, amqp_uri):
    lid = graph_lead(graph, full_name="Never", email=new_email())
    graph.fail_next.extend([(503, {"error": {"message": "down", "code": 2}})] * 4)
    deliver(amqp_uri, lid)
    failed = wait_for(lambda: (submission(call, lid) or {}).get("status") == "failed"
                      and submission(call, lid), timeout=20, what="the failed submission")
    assert failed["attempts"] == 4 and "down" in failed["lastError"]
    assert len(graph.seen("/" + lid)) == 4


def test_a_submission_without_an_email_is_kept_failed_with_what_meta_sent(
        container, call, graph, amqp_uri):
    lid = graph_lead(graph, full_name="Phone Only", phone_number="+15550199")
    deliver(amqp_uri, lid)
    failed = wait_for(lambda: (submission(call, lid) or {}).get("status") == "failed"
                      and submission(call, lid), what="the failed submission")
    assert "no valid email" in failed["lastError"] and failed["leadId"] is None
    with database_engine(container).connect() as conn:
        kept = conn.execute(sa.text("SELECT graph_lead FROM lead_ad_submissions "
                                    "WHERE leadgen_id = :id"), {"id": lid}).scalar()
    assert kept["field_data"][1] == {"name": "phone_number", "values": ["+15550199"]}


def test_bad_list_queries_are_refused(call):
    with pytest.raises(InvalidLead):
        call("list_lead_ads", "lost")


def test_a_restart_between_the_claim_and_the_fetch_loses_nothing(
        container_factory, lead_ads_config, container, graph, amqp_uri):
    """The process dies while it fetches (after the gateway's 200 and after
    the submission was recorded and claimed): the next one makes the lead
    once the claim lapses."""
    email = new_email("restart")
    lid = graph_lead(graph, full_name="Resilient Rita", email=email)
    graph.delay = 3.0                    # the fetch hangs long enough to kill the process
    deliver(amqp_uri, lid)
    wait_for(lambda: graph.seen("/" + lid), what="the fetch to start")
    container.kill()
    graph.delay = 0.0
    restarted = container_factory(LeadsService, lead_ads_config)
    restarted.start()
    call = entrypoint_caller(restarted)
    [lead] = wait_for(lambda: leads_with(call, email), timeout=15, what="the lead after restart")
    assert lead["name"] == "Resilient Rita"
    assert submission(call, lid)["attempts"] == 2


def test_a_delivery_queued_while_the_service_is_down_is_made_at_start(
        container_factory, lead_ads_config, container, graph, amqp_uri):
    container.stop()                     # its durable queue stays, as bootstrap declares it
    email = new_email("queued")
    lid = graph_lead(graph, full_name="Queued Quinn", email=email)
    deliver(amqp_uri, lid)
    time.sleep(0.5)
    assert not graph.seen("/" + lid)
    restarted = container_factory(LeadsService, lead_ads_config)
    restarted.start()
    call = entrypoint_caller(restarted)
    [lead] = wait_for(lambda: leads_with(call, email), what="the lead after start")
    assert lead["name"] == "Queued Quinn"


def test_the_cli_lists_failed_submissions_and_retries_them(call, graph, amqp_uri, capsys):
    from leads import lead_ads_cli

    lid = new_id()
    deliver(amqp_uri, lid)
    wait_for(lambda: (submission(call, lid) or {}).get("status") == "failed",
             what="the failed submission")
    assert lead_ads_cli.main(["list", "--status", "failed", "--limit", "1000"]) == 0
    listed = capsys.readouterr().out
    assert lid in listed and "Unsupported get request" in listed
    assert lead_ads_cli.main(["list", "--json", "--limit", "1000"]) == 0
    assert any('"leadgenId": "%s"' % lid in line for line in capsys.readouterr().out.splitlines())

    email = new_email("cli")
    graph_lead(graph, lid, full_name="Cli Carla", email=email)
    assert lead_ads_cli.main(["retry", lid]) == 0
    assert "1 submission(s) made pending: %s" % lid in capsys.readouterr().out
    [lead] = wait_for(lambda: leads_with(call, email), what="the lead after the CLI retry")
    assert lead["metaLeadAd"]["leadgenId"] == lid
