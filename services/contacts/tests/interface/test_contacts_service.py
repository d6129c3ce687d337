"""The contacts service's RPC interface against real PostgreSQL (and the
outbox relay on the test broker)."""
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from nameko.standalone.rpc import ServiceRpcProxy

from contacts.exceptions import ContactNotFound, InvalidContact
from contacts.service import ContactsService
from crm_common.testing import database_engine, entrypoint_caller


@pytest.fixture
def container(container_factory, service_config):
    container = container_factory(ContactsService, service_config)
    container.start()
    return container


@pytest.fixture
def call(container):
    return entrypoint_caller(container)


@pytest.fixture
def count_rows(container):
    engine = database_engine(container)

    def count(sql, **params):
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    return count


def email():
    return "contact.%s@Example.com" % uuid.uuid4().hex[:10]


def a_lead(**fields):
    """A lead as the leads service sends it for conversion (contract JSON)."""
    lead = {"id": str(uuid.uuid4()), "name": "Alice Johnson", "email": email().lower(),
            "phone": "+15550100", "company": "Acme", "jobTitle": "CTO", "status": "qualified",
            "source": "Facebook Ad", "score": 85, "value": 1200.0, "ownerId": None,
            "createdAt": "2024-03-10T10:00:00.000Z", "updatedAt": "2024-03-10T10:00:00.000Z",
            "lastInteraction": None, "lastInteractionAt": None}
    lead.update(fields)
    return lead


# -- create, read, update, delete -------------------------------------------

def test_create_lower_cases_the_email_and_reads_back_whole(call):
    address = email()
    contact = call("create_contact", {"name": "Bob", "email": address, "role": "Buyer",
                                      "company": "Acme", "notes": "Met at expo"})
    assert contact["email"] == address.lower()
    assert contact["leadId"] is None and contact["lastContacted"] is None
    assert contact["phone"] is None and contact["notes"] == "Met at expo"
    assert contact["createdAt"].endswith("Z") and contact["createdAt"] == contact["updatedAt"]
    assert call("get_contact", contact["id"]) == contact


def test_email_is_not_unique_among_contacts(call):
    address = email()
    first = call("create_contact", {"name": "Bob", "email": address})
    second = call("create_contact", {"name": "Bobby", "email": address.upper()})
    assert first["id"] != second["id"] and first["email"] == second["email"]


def test_invalid_input_is_refused_naming_the_fields(call, count_rows):
    with pytest.raises(InvalidContact) as exc:
        call("create_contact", {"name": "", "email": ""})
    assert [e["field"] for e in exc.value.details["errors"]] == ["name", "email"]
    with pytest.raises(InvalidContact) as exc:
        call("create_contact", {"name": "Bob", "email": email(), "favourite": "red"})
    assert exc.value.details["errors"] == [{"field": "favourite", "message": "unknown field"}]
    contact = call("create_contact", {"name": "Bob", "email": email()})
    for bad in ({"name": None}, {"lead_id": str(uuid.uuid4())}, {"company": "x" * 201}):
        with pytest.raises(InvalidContact):
            call("update_contact", contact["id"], bad)
    assert call("get_contact", contact["id"]) == contact


def test_unknown_and_malformed_ids_are_not_found(call):
    for contact_id in (str(uuid.uuid4()), "not-a-uuid", "1' OR 1=1"):
        with pytest.raises(ContactNotFound):
            call("get_contact", contact_id)
        with pytest.raises(ContactNotFound):
            call("update_contact", contact_id, {"role": "x"})
        with pytest.raises(ContactNotFound):
            call("delete_contact", contact_id)
        with pytest.raises(ContactNotFound):
            call("list_history", contact_id)
        with pytest.raises(ContactNotFound):
            call("log_history", contact_id, {"type": "call", "title": "x"})


def test_update_changes_the_fields_and_publishes_the_changes(call, event_tap):
    events = event_tap("contacts", "contact_updated")
    contact = call("create_contact", {"name": "Bob", "email": email(), "role": "Buyer"})
    updated = call("update_contact", contact["id"], {"role": "Champion", "phone": "+1555"})
    assert updated["role"] == "Champion" and updated["phone"] == "+1555"
    assert updated["updatedAt"] >= contact["updatedAt"]
    assert call("get_contact", contact["id"]) == updated
    _, body = events.wait(lambda k, b: b["contact"]["id"] == contact["id"])
    assert body["changes"] == {"role": ["Buyer", "Champion"], "phone": [None, "+1555"]}
    assert body["contact"] == updated


def test_an_update_that_changes_nothing_writes_nothing(call):
    contact = call("create_contact", {"name": "Same", "email": email()})
    again = call("update_contact", contact["id"], {"name": "Same", "email": contact["email"].upper()})
    assert again == contact


def test_created_and_deleted_are_published_with_the_envelope(call, event_tap):
    events = event_tap("contacts")
    contact = call("create_contact", {"name": "Bob", "email": email()})
    _, created = events.wait(lambda k, b: k == "contact_created" and b["contact"]["id"] == contact["id"])
    assert created["contact"] == contact
    assert created["version"] == 1 and uuid.UUID(created["event_id"]) and created["occurred_at"]
    call("delete_contact", contact["id"])
    _, deleted = events.wait(lambda k, b: k == "contact_deleted" and b["contact"]["id"] == contact["id"])
    assert deleted["contact"] == contact


def test_delete_removes_the_contact_and_its_history(call, count_rows):
    contact = call("create_contact", {"name": "Gone", "email": email()})
    call("log_history", contact["id"], {"type": "call", "title": "x"})
    call("delete_contact", contact["id"])
    with pytest.raises(ContactNotFound):
        call("get_contact", contact["id"])
    with pytest.raises(ContactNotFound):
        call("delete_contact", contact["id"])
    assert count_rows("SELECT count(*) FROM contact_history WHERE contact_id = :id",
                      id=contact["id"]) == 0


# -- lists -------------------------------------------------------------------

def test_search_matches_name_email_or_company_case_insensitively(call):
    tag = uuid.uuid4().hex[:8]
    by_name = call("create_contact", {"name": "Carol " + tag.upper(), "email": email()})
    by_email = call("create_contact", {"name": "Dan", "email": "%s@example.com" % tag})
    by_company = call("create_contact", {"name": "Eve", "email": email(), "company": "Co " + tag})
    found = call("list_contacts", {"search": tag, "sort": "name"})
    assert found["total"] == 3
    assert [c["id"] for c in found["items"]] == [by_name["id"], by_email["id"], by_company["id"]]


def test_search_treats_percent_and_underscore_literally(call):
    tag = uuid.uuid4().hex[:8]
    literal = call("create_contact", {"name": "100%_off " + tag, "email": email()})
    call("create_contact", {"name": "100 percent off %s" % tag, "email": email()})
    call("create_contact", {"name": "100x offx %s" % tag, "email": email()})
    found = call("list_contacts", {"search": "100%_off"})
    assert [c["id"] for c in found["items"]] == [literal["id"]]


def test_company_filter_is_exact_and_case_insensitive(call):
    company = "Acme %s" % uuid.uuid4().hex[:8]
    exact = call("create_contact", {"name": "A", "email": email(), "company": company})
    other_case = call("create_contact", {"name": "B", "email": email(), "company": company.upper()})
    call("create_contact", {"name": "C", "email": email(), "company": company + " Ltd"})
    found = call("list_contacts", {"company": company.lower(), "sort": "name"})
    assert [c["id"] for c in found["items"]] == [exact["id"], other_case["id"]]


def test_sort_and_paging(call):
    tag = uuid.uuid4().hex[:8]
    made = [call("create_contact", {"name": "P%d %s" % (i, tag), "email": email(),
                                    "company": None if i == 2 else "C%d" % (4 - i)})
            for i in range(5)]
    names = lambda result: [c["name"][:2] for c in result["items"]]  # noqa: E731
    page = call("list_contacts", {"search": tag, "sort": "name", "limit": 2, "offset": 0})
    assert page["total"] == 5 and names(page) == ["P0", "P1"]
    rest = call("list_contacts", {"search": tag, "sort": "name", "limit": 10, "offset": 2})
    assert names(rest) == ["P2", "P3", "P4"]
    assert call("list_contacts", {"search": tag, "offset": 10})["items"] == []
    newest_first = call("list_contacts", {"search": tag})["items"]
    assert [c["id"] for c in newest_first] == [c["id"] for c in reversed(made)]
    # a contact without a company comes last in both directions
    assert names(call("list_contacts", {"search": tag, "sort": "company"})) == \
        ["P4", "P3", "P1", "P0", "P2"]
    assert names(call("list_contacts", {"search": tag, "sort": "-company"})) == \
        ["P0", "P1", "P3", "P4", "P2"]
    with pytest.raises(InvalidContact):
        call("list_contacts", {"sort": "password"})


# -- history -----------------------------------------------------------------

def test_history_is_newest_first_and_sets_last_contacted(call, event_tap):
    events = event_tap("contacts", "contact_updated")
    contact = call("create_contact", {"name": "H", "email": email()})
    call("log_history", contact["id"], {"type": "call", "title": "Intro",
                                        "timestamp": "2024-03-09T09:00:00Z"})
    meeting = call("log_history", contact["id"], {"type": "meeting", "title": "Review",
                                                  "description": "Quarterly",
                                                  "timestamp": "2024-03-10T10:00:00+02:00"})
    call("log_history", contact["id"], {"type": "page_visit", "title": "Old",
                                        "timestamp": "2023-01-01T00:00:00Z"})
    assert meeting["timestamp"] == "2024-03-10T08:00:00.000Z" and meeting["description"] == "Quarterly"
    after = call("get_contact", contact["id"])
    assert after["lastContacted"] == "2024-03-10T08:00:00.000Z"
    history = call("list_history", contact["id"])
    assert history["total"] == 3
    assert [h["title"] for h in history["items"]] == ["Review", "Intro", "Old"]
    assert call("list_history", contact["id"], 1, 1)["items"][0]["title"] == "Intro"
    _, body = events.wait(lambda k, b: b["contact"]["id"] == contact["id"]
                          and b["contact"]["lastContacted"] == after["lastContacted"])
    assert body["changes"]["lastContacted"] == ["2024-03-09T09:00:00.000Z", after["lastContacted"]]


def test_a_logged_item_without_a_timestamp_is_stamped_now(call):
    contact = call("create_contact", {"name": "N", "email": email()})
    item = call("log_history", contact["id"], {"type": "note_created", "title": "Note"})
    assert call("get_contact", contact["id"])["lastContacted"] == item["timestamp"]


def test_refused_history_writes_nothing(call):
    contact = call("create_contact", {"name": "R", "email": email()})
    for bad in ({"type": "status_change", "title": "x"}, {"type": "telepathy", "title": "x"},
                {"type": "call", "title": ""}, {"type": "call", "title": "x", "timestamp": "soon"}):
        with pytest.raises(InvalidContact):
            call("log_history", contact["id"], bad)
    assert call("list_history", contact["id"])["total"] == 0
    assert call("get_contact", contact["id"]) == contact


# -- conversion of a lead ----------------------------------------------------

def test_create_from_lead_copies_the_lead_once(call, event_tap):
    events = event_tap("contacts", "contact_created")
    lead = a_lead()
    first = call("create_from_lead", lead)
    assert first["created"] is True
    contact = first["contact"]
    assert contact["leadId"] == lead["id"]
    assert (contact["name"], contact["email"], contact["phone"], contact["company"], contact["role"]) \
        == ("Alice Johnson", lead["email"], "+15550100", "Acme", "CTO")
    again = call("create_from_lead", dict(lead, name="Renamed"))
    assert again == {"contact": contact, "created": False}
    events.wait(lambda k, b: b["contact"]["id"] == contact["id"])


def test_create_from_lead_links_an_unlinked_contact_with_the_email(call, event_tap):
    events = event_tap("contacts", "contact_updated")
    lead = a_lead()
    existing = call("create_contact", {"name": "Alice J.", "email": lead["email"], "role": "Buyer"})
    result = call("create_from_lead", lead)
    assert result["created"] is False
    assert result["contact"]["id"] == existing["id"] and result["contact"]["leadId"] == lead["id"]
    assert result["contact"]["role"] == "Buyer"       # the contact's own data is kept
    _, body = events.wait(lambda k, b: b["contact"]["id"] == existing["id"])
    assert body["changes"] == {"leadId": [None, lead["id"]]}
    # a contact linked to one lead is not taken by another lead with that email
    other = call("create_from_lead", a_lead(email=lead["email"]))
    assert other["created"] is True and other["contact"]["id"] != existing["id"]


def conversions(service_config, lead, n=8):
    def convert(_):
        # real RPC calls, each its own proxy, served concurrently by the container
        with ServiceRpcProxy("contacts", service_config, timeout=10) as contacts:
            return contacts.create_from_lead(lead)
    return [g.wait() for g in [eventlet.spawn(convert, i) for i in range(n)]]


def test_concurrent_conversions_make_one_contact(container, count_rows, service_config):
    lead = a_lead()
    outcomes = conversions(service_config, lead)
    assert sum(o["created"] for o in outcomes) == 1
    assert len({o["contact"]["id"] for o in outcomes}) == 1
    assert count_rows("SELECT count(*) FROM contacts WHERE lead_id = :id", id=lead["id"]) == 1
    assert count_rows("SELECT count(*) FROM contacts WHERE email = :e", e=lead["email"]) == 1


def test_concurrent_conversions_link_one_of_two_contacts_with_the_email(
        call, container, count_rows, service_config):
    lead = a_lead()
    oldest = call("create_contact", {"name": "First", "email": lead["email"]})
    call("create_contact", {"name": "Second", "email": lead["email"]})
    outcomes = conversions(service_config, lead)
    assert not any(o["created"] for o in outcomes)
    assert {o["contact"]["id"] for o in outcomes} == {oldest["id"]}
    assert count_rows("SELECT count(*) FROM contacts WHERE lead_id = :id", id=lead["id"]) == 1
    assert count_rows("SELECT count(*) FROM contacts WHERE email = :e", e=lead["email"]) == 2
