"""The leads service's RPC interface against real PostgreSQL (and the outbox
relay on the test broker)."""
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from crm_common.testing import database_engine, entrypoint_caller
from leads.exceptions import DuplicateEmail, InvalidLead, LeadNotFound
from leads.service import LeadsService


@pytest.fixture
def container(container_factory, service_config):
    container = container_factory(LeadsService, service_config)
    container.start()
    return container


@pytest.fixture
def call(container):
    return entrypoint_caller(container)


def email():
    return "lead.%s@Example.com" % uuid.uuid4().hex[:10]


def test_create_applies_defaults_and_lower_cases_the_email(call):
    address = email()
    lead = call("create_lead", {"name": "Alice", "email": address, "company": "Acme"})
    assert lead["email"] == address.lower()
    assert lead["status"] == "new" and lead["source"] == "Manual" and lead["value"] == 0.0
    assert 0 <= lead["score"] <= 100
    assert lead["createdAt"].endswith("Z") and lead["lastInteraction"] is None
    assert call("get_lead", lead["id"]) == lead


def test_duplicate_email_names_the_existing_lead(call):
    address = email()
    first = call("create_lead", {"name": "A", "email": address})
    with pytest.raises(DuplicateEmail) as exc:
        call("create_lead", {"name": "B", "email": address.upper()})
    assert exc.value.details["existingId"] == first["id"]


def test_an_update_to_another_leads_email_names_that_lead(call):
    taken = call("create_lead", {"name": "A", "email": email()})
    other = call("create_lead", {"name": "B", "email": email()})
    with pytest.raises(DuplicateEmail) as exc:
        call("update_lead", other["id"], {"email": taken["email"].upper(), "name": "B2"})
    assert exc.value.details["existingId"] == taken["id"]
    assert call("get_lead", other["id"]) == other


def test_concurrent_creates_with_one_email_make_one_lead(container, call, service_config):
    address = email()

    def create(n):
        # real RPC calls, each its own proxy, served concurrently by the container
        with ServiceRpcProxy("leads", service_config, timeout=10) as leads:
            try:
                return leads.create_lead({"name": "Racer %d" % n, "email": address})
            except RemoteError as exc:
                return exc

    outcomes = [g.wait() for g in [eventlet.spawn(create, n) for n in range(8)]]
    created = [o for o in outcomes if isinstance(o, dict)]
    assert len(created) == 1
    refused = [o for o in outcomes if not isinstance(o, dict)]
    assert len(refused) == 7 and all(o.exc_type == "DuplicateEmail" for o in refused)
    found = call("list_leads", {"search": address})
    assert found["total"] == 1


def test_unknown_and_malformed_ids_are_not_found(call):
    for lead_id in (str(uuid.uuid4()), "not-a-uuid", "1' OR 1=1"):
        with pytest.raises(LeadNotFound):
            call("get_lead", lead_id)
        with pytest.raises(LeadNotFound):
            call("update_lead", lead_id, {"status": "contacted"})


def test_search_treats_percent_and_underscore_literally(call):
    tag = uuid.uuid4().hex[:8]
    literal = call("create_lead", {"name": "100%_off " + tag, "email": email()})
    call("create_lead", {"name": "100 percent off %s" % tag, "email": email()})
    call("create_lead", {"name": "100x offx %s" % tag, "email": email()})
    found = call("list_leads", {"search": "100%_off"})
    assert [l["id"] for l in found["items"]] == [literal["id"]]


def test_filters_sort_and_paging(call):
    tag = uuid.uuid4().hex[:8]
    made = [call("create_lead", {"name": "P%d %s" % (i, tag), "email": email(), "score": 10 * i,
                                 "status": "new" if i % 2 else "qualified", "source": "Src" + tag,
                                 "owner_id": "owner-%d" % (i % 2)})
            for i in range(5)]
    page = call("list_leads", {"search": tag, "sort": "-score", "limit": 2, "offset": 0})
    assert page["total"] == 5 and [l["score"] for l in page["items"]] == [40, 30]
    rest = call("list_leads", {"search": tag, "sort": "-score", "limit": 10, "offset": 2})
    assert [l["score"] for l in rest["items"]] == [20, 10, 0]
    assert call("list_leads", {"search": tag, "status": ["new"]})["total"] == 2
    assert call("list_leads", {"source": "Src" + tag, "min_score": 25})["total"] == 2
    assert call("list_leads", {"search": tag, "owner_id": "owner-1"})["total"] == 2
    ascending = call("list_leads", {"search": tag, "sort": "name"})["items"]
    assert [l["id"] for l in ascending] == [m["id"] for m in made]
    with pytest.raises(InvalidLead):
        call("list_leads", {"sort": "password"})


def test_status_change_is_written_to_the_timeline_and_published(call, event_tap):
    events = event_tap("leads")
    lead = call("create_lead", {"name": "S", "email": email()})
    updated = call("update_lead", lead["id"], {"status": "proposal", "value": 500})
    assert updated["status"] == "proposal" and updated["value"] == 500.0
    timeline = call("list_activity", lead["id"])["items"]
    assert timeline[0]["type"] == "status_change"
    assert "new" in timeline[0]["title"] and "proposal" in timeline[0]["title"]
    _, changed = events.wait(lambda k, b: k == "lead_status_changed" and b["lead"]["id"] == lead["id"])
    assert changed["old_status"] == "new" and changed["new_status"] == "proposal"
    uuid.UUID(changed["event_id"])
    _, diff = events.wait(lambda k, b: k == "lead_updated" and b["lead"]["id"] == lead["id"])
    assert diff["changes"]["status"] == ["new", "proposal"]
    assert diff["changes"]["value"] == [0.0, 500.0]


def test_an_update_that_changes_nothing_writes_nothing(call, container):
    lead = call("create_lead", {"name": "Same", "email": email()})
    again = call("update_lead", lead["id"], {"name": "Same"})
    assert again["updatedAt"] == lead["updatedAt"]
    assert call("list_activity", lead["id"])["total"] == 0


def test_logged_activity_moves_last_interaction_and_score(call):
    lead = call("create_lead", {"name": "A", "email": email(), "score": 50})
    call("log_activity", lead["id"], {"type": "call", "title": "Intro", "timestamp": "2024-03-09T09:00:00Z"})
    call("log_activity", lead["id"], {"type": "meeting", "title": "Demo",
                                      "timestamp": "2024-03-10T10:00:00+02:00"})
    call("log_activity", lead["id"], {"type": "page_visit", "title": "Old", "timestamp": "2023-01-01T00:00:00Z"})
    after = call("get_lead", lead["id"])
    assert after["lastInteractionAt"] == "2024-03-10T08:00:00.000Z"
    assert after["lastInteraction"] == "2024-03-10"
    assert after["score"] == 50 + 10 + 15 + 3
    stamps = [a["timestamp"] for a in call("list_activity", lead["id"])["items"]]
    assert stamps == sorted(stamps, reverse=True)


def test_status_change_activities_cannot_be_logged_by_clients(call):
    lead = call("create_lead", {"name": "A", "email": email()})
    for bad in ({"type": "status_change", "title": "x"}, {"type": "telepathy", "title": "x"},
                {"type": "call", "title": ""}, {"type": "call", "title": "x", "timestamp": "soon"}):
        with pytest.raises(InvalidLead):
            call("log_activity", lead["id"], bad)
    assert call("list_activity", lead["id"])["total"] == 0


def test_constraint_violations_are_validation_errors(call):
    for bad in ({"status": "won"}, {"score": 101}, {"value": -1}, {"favourite": "red"}):
        with pytest.raises(InvalidLead):
            call("create_lead", dict({"name": "Bad", "email": email()}, **bad))


def test_delete_removes_the_lead_and_its_timeline(call, container, event_tap):
    events = event_tap("leads", "lead_deleted")
    lead = call("create_lead", {"name": "Gone", "email": email()})
    call("log_activity", lead["id"], {"type": "call", "title": "x"})
    call("delete_lead", lead["id"])
    with pytest.raises(LeadNotFound):
        call("get_lead", lead["id"])
    with pytest.raises(LeadNotFound):
        call("delete_lead", lead["id"])
    events.wait(lambda k, b: b["lead"]["id"] == lead["id"])
    engine = database_engine(container)
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM activities WHERE lead_id = :id"),
                            {"id": lead["id"]}).scalar()
    assert left == 0


@pytest.fixture
def contacts(container_factory, service_config):
    from contacts.service import ContactsService

    container = container_factory(ContactsService, service_config)
    container.start()
    return container


def test_convert_makes_one_contact_and_notes_it_once(call, contacts):
    lead = call("create_lead", {"name": "Convert Me", "email": email(), "company": "Acme",
                                "job_title": "CEO", "phone": "+1555"})
    first = call("convert_lead", lead["id"])
    assert first["created"] is True
    contact = first["contact"]
    assert (contact["name"], contact["email"], contact["company"], contact["role"],
            contact["phone"], contact["leadId"]) == ("Convert Me", lead["email"], "Acme", "CEO",
                                                     "+1555", lead["id"])
    again = call("convert_lead", lead["id"])
    assert again["created"] is False and again["contact"]["id"] == contact["id"]
    notes = [a for a in call("list_activity", lead["id"])["items"] if a["type"] == "note_created"]
    assert len(notes) == 1 and contact["id"] in notes[0]["description"]


def test_racing_conversions_make_one_contact(container, contacts, call, service_config):
    lead = call("create_lead", {"name": "Racer", "email": email()})

    def convert():
        with ServiceRpcProxy("leads", service_config, timeout=10) as leads:
            return leads.convert_lead(lead["id"])

    results = [g.wait() for g in [eventlet.spawn(convert) for _ in range(6)]]
    assert len({r["contact"]["id"] for r in results}) == 1
    assert sum(r["created"] for r in results) == 1
    notes = [a for a in call("list_activity", lead["id"])["items"] if a["type"] == "note_created"]
    assert len(notes) == 1


def test_converting_an_unknown_lead_is_not_found(call):
    with pytest.raises(LeadNotFound):
        call("convert_lead", str(uuid.uuid4()))


def test_converting_while_contacts_is_down_is_unavailable_and_makes_nothing(call):
    from crm_common.errors import Unavailable

    lead = call("create_lead", {"name": "Waiting", "email": email()})
    with pytest.raises(Unavailable):
        call("convert_lead", lead["id"])
    assert call("list_activity", lead["id"])["total"] == 0


def test_closed_at_follows_the_status(call):
    born_closed = call("create_lead", {"name": "Won", "email": email(), "status": "closed"})
    assert born_closed["closedAt"] == born_closed["createdAt"]
    lead = call("create_lead", {"name": "Later", "email": email()})
    assert lead["closedAt"] is None
    closed = call("update_lead", lead["id"], {"status": "closed"})
    assert closed["closedAt"] == closed["updatedAt"]
    assert call("update_lead", lead["id"], {"value": 10})["closedAt"] == closed["closedAt"]
    assert call("update_lead", lead["id"], {"status": "proposal"})["closedAt"] is None
