"""docs/asyncapi.yaml, without a stack: it parses, every `$ref` resolves
(into docs/openapi.json too), what the services' serializers write passes,
and a payload or header the document does not allow is refused, so the
end-to-end check (tests/e2e/test_asyncapi.py) can fail."""
import datetime as dt
import json
import shutil
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
import yaml

from campaigns.schemas import campaign_to_dict, day_to_dict
from contacts.schemas import contact_to_dict
from crm_common.asyncapi import DOCUMENT, DocumentError, EventDocument
from crm_common.events import envelope
from leads.schemas import lead_to_dict
from tasks.schemas import task_to_dict

NOW = dt.datetime(2024, 3, 10, 10, 0, 0, 123000, tzinfo=dt.timezone.utc)
HEADERS = {"nameko.call_id_stack": ["gateway.http.abc123", "leads.create_lead.%s" % uuid.uuid4()],
           "nameko.correlation_id": "abc123"}
# Keywords that AsyncAPI 2's schema dialect (draft-07) and JSON Schema
# 2020-12 (what the payloads are validated as) read differently, or one of
# them does not know.
DIALECT_SPECIFIC = {"$defs", "definitions", "prefixItems", "additionalItems", "dependencies",
                    "dependentRequired", "dependentSchemas", "unevaluatedProperties",
                    "unevaluatedItems", "$dynamicRef", "$dynamicAnchor", "$recursiveRef",
                    "$recursiveAnchor", "$anchor", "$id", "$schema"}


@pytest.fixture(scope="module")
def doc():
    return EventDocument()


def lead(**overrides):
    row = dict(id=uuid.uuid4(), name="Alice", email="alice@example.com", phone=None,
               company="Acme", job_title="CTO", status="new", source="Manual", score=40,
               value=Decimal("1200.50"), owner_id=None, created_at=NOW, updated_at=NOW,
               last_interaction_at=None, closed_at=None, meta_leadgen_id=None,
               meta_form_id=None, meta_ad_id=None, meta_campaign_id=None, meta_page_id=None)
    row.update(overrides)
    return lead_to_dict(SimpleNamespace(**row))


def contact(**overrides):
    row = dict(id=uuid.uuid4(), name="Bob", email="bob@example.com", role=None, company=None,
               phone=None, notes="met at a fair", lead_id=None, last_contacted=None,
               created_at=NOW, updated_at=NOW)
    row.update(overrides)
    return contact_to_dict(SimpleNamespace(**row))


def task(**overrides):
    row = dict(id=uuid.uuid4(), title="Call", description="", due_date=dt.date(2024, 3, 12),
               due_at=None, priority="high", completed=False, completed_at=None,
               related_to_type="lead", related_to_id=uuid.uuid4(), created_at=NOW,
               updated_at=NOW)
    row.update(overrides)
    return task_to_dict(SimpleNamespace(**row))


def campaign_synced():
    campaign = SimpleNamespace(id=uuid.uuid4(), meta_campaign_id="120000000001",
                               name="Summer Sale", status="active", objective="Sales",
                               last_synced_at=NOW)
    day = SimpleNamespace(date=dt.date(2024, 3, 1), spend=Decimal("10.50"), impressions=1000,
                          clicks=30, leads=1, revenue=Decimal("40.00"))
    return envelope({"campaign": campaign_to_dict(campaign), "daily": [day_to_dict(day)]})


def valid_messages():
    """One payload per documented event, as the services' code writes them."""
    before, after = lead(), lead(status="contacted", score=55)
    changes = {"status": ["new", "contacted"], "score": [40, 55]}
    with_lead = contact(lead_id=uuid.uuid4())
    linked = {"leadId": [None, with_lead["leadId"]]}
    return {
        ("leads", "lead_created"): envelope({"lead": lead(
            meta_leadgen_id="444", meta_page_id="9001", meta_form_id="555")}),
        ("leads", "lead_updated"): envelope({"lead": after, "changes": changes}),
        ("leads", "lead_status_changed"): envelope({"lead": after, "old_status": before["status"],
                                                    "new_status": after["status"]}),
        ("leads", "lead_deleted"): envelope({"lead": before}),
        ("contacts", "contact_created"): envelope({"contact": with_lead}),
        ("contacts", "contact_updated"): envelope({"contact": with_lead, "changes": linked}),
        ("contacts", "contact_deleted"): envelope({"contact": contact()}),
        ("tasks", "task_created"): envelope({"task": task()}),
        ("tasks", "task_updated"): envelope({"task": task(due_date=None, due_at=NOW)}),
        ("tasks", "task_completed"): envelope({"task": task(completed=True, completed_at=NOW)}),
        ("tasks", "task_deleted"): envelope({"task": task(related_to_type="general",
                                                          related_to_id=None)}),
        ("campaigns", "campaign_synced"): campaign_synced(),
        ("gateway", "meta_leadgen_received"): {
            "object": "page", "request_id": "abc123",
            "changes": [{"leadgen_id": 444, "page_id": "9001", "form_id": "555"}]},
    }


def walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def test_the_document_parses_and_every_ref_resolves(doc):
    assert doc.document["asyncapi"].startswith("2.")
    assert not [n for n in walk(doc.document) if isinstance(n, dict) and "$ref" in n]
    assert doc.documented() == set(valid_messages())
    for event in doc.events.values():
        assert event.exchange == {"name": event.source + ".events", "type": "topic",
                                  "durable": True, "autoDelete": False}, event.name
        assert (event.content_type, event.content_encoding, event.delivery_mode) == (
            "application/json", "utf-8", 2), event.name


def test_its_schemas_read_the_same_in_asyncapi_2_tools(doc):
    """AsyncAPI 2 reads payload schemas as draft-07; they are validated here
    as JSON Schema 2020-12 (the OpenAPI 3.1 document's dialect): nothing in
    them may mean something else in the one than in the other."""
    assert doc.refs_with_siblings == []
    for event in doc.events.values():
        for part in ("payload", "headers"):
            schemas = [n for n in walk(event.message[part]) if isinstance(n, dict)]
            # a property named like a keyword is not a keyword
            keywords = {k for s in schemas for k in s} - {
                name for s in schemas for name in s.get("properties", {})}
            assert not keywords & DIALECT_SPECIFIC, (event.name, part)
            assert not [s for s in schemas if isinstance(s.get("items"), list)], (event.name, part)


@pytest.mark.parametrize("key", sorted(valid_messages()), ids=".".join)
def test_what_the_services_write_passes(doc, key):
    assert doc.problems(*key, valid_messages()[key], HEADERS) == []


def without(payload, field):
    return {k: v for k, v in payload.items() if k != field}


WRONG = {
    "no event_id": (("leads", "lead_created"), lambda p: without(p, "event_id"), "event_id"),
    "an undocumented field": (("tasks", "task_created"), lambda p: dict(p, extra=1), "extra"),
    "a resource field too many": (
        ("contacts", "contact_created"),
        lambda p: dict(p, contact=dict(p["contact"], secret="x")), "secret"),
    "another version": (("tasks", "task_deleted"), lambda p: dict(p, version=2), "/version"),
    "a timestamp without milliseconds": (
        ("leads", "lead_deleted"), lambda p: dict(p, occurred_at="2024-03-10T10:00:00Z"),
        "/occurred_at"),
    "an unknown status": (("leads", "lead_status_changed"),
                          lambda p: dict(p, new_status="won"), "/new_status"),
    "no changes": (("leads", "lead_updated"), lambda p: dict(p, changes={}), "/changes"),
    "a change of a field that cannot change": (
        ("leads", "lead_updated"), lambda p: dict(p, changes={"updatedAt": ["a", "b"]}),
        "updatedAt"),
    "a change that is not [old, new]": (
        ("contacts", "contact_updated"), lambda p: dict(p, changes={"name": ["Bob"]}),
        "/changes/name"),
    "a change of the wrong type": (
        ("leads", "lead_updated"), lambda p: dict(p, changes={"score": ["40", 55]}),
        "/changes/score/0"),
    "the HTTP API's campaign, metrics and all": (
        ("campaigns", "campaign_synced"),
        lambda p: dict(p, campaign=dict(p["campaign"], spend=10.5)), "spend"),
    "a day without its date": (
        ("campaigns", "campaign_synced"),
        lambda p: dict(p, daily=[without(p["daily"][0], "date")]), "/daily/0"),
    "a lead-ad delivery without changes": (
        ("gateway", "meta_leadgen_received"), lambda p: dict(p, changes=[]), "/changes"),
    "an envelope on the gateway's event": (
        ("gateway", "meta_leadgen_received"), lambda p: envelope(p), "event_id"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_payload_the_document_does_not_allow_is_refused(doc, case):
    key, spoil, named = WRONG[case]
    problems = doc.problems(*key, spoil(valid_messages()[key]), HEADERS)
    assert problems and any(named in p for p in problems), problems


@pytest.mark.parametrize("headers", [{}, {"nameko.call_id_stack": []},
                                     {"nameko.call_id_stack": ["a b"]},
                                     dict(HEADERS, **{"x-other": "1"})])
def test_headers_the_document_does_not_allow_are_refused(doc, headers):
    key = ("leads", "lead_created")
    assert doc.problems(*key, valid_messages()[key], headers)


def test_an_event_it_does_not_name_is_a_problem(doc):
    assert doc.problems("analytics", "stats_changed", {}) == [
        "analytics.stats_changed is not in asyncapi.yaml"]


@pytest.fixture
def copy(tmp_path):
    """The document and openapi.json in a scratch folder, to break them."""
    for name in ("asyncapi.yaml", "openapi.json"):
        shutil.copy(DOCUMENT.parent / name, tmp_path / name)
    return tmp_path


def test_a_ref_that_points_nowhere_is_reported(copy):
    path = copy / "asyncapi.yaml"
    path.write_text(path.read_text().replace("schemas/Lead'", "schemas/Leed'", 1))
    with pytest.raises(DocumentError, match="Leed"):
        EventDocument(path)


def test_an_openapi_3_0_document_is_refused(copy):
    """3.0 schemas are not JSON Schema (`nullable`): they would be misread."""
    spec = json.loads((copy / "openapi.json").read_text())
    (copy / "openapi.json").write_text(json.dumps(dict(spec, openapi="3.0.3")))
    with pytest.raises(DocumentError, match="3.0.3"):
        EventDocument(copy / "asyncapi.yaml")


def test_a_channel_on_the_wrong_exchange_is_reported(copy):
    path = copy / "asyncapi.yaml"
    document = yaml.safe_load(path.read_text())
    document["components"]["channelBindings"]["tasks"]["amqp"]["exchange"]["name"] = "x.events"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(DocumentError, match="tasks.events"):
        EventDocument(path)
