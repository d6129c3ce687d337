"""`export_leads`: every lead, a page at a time in id order (keyset paging),
for services that rebuild from the current data."""
import uuid

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from crm_common.testing import entrypoint_caller
from leads.exceptions import InvalidLead
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
    return "export.%s@example.com" % uuid.uuid4().hex[:10]


def export_all(fetch, limit):
    pages, after = [], None
    while True:
        page = fetch(after, limit)
        pages.append(page)
        if page["next"] is None:
            return pages
        assert page["next"] == page["items"][-1]["id"]
        after = page["next"]


def test_pages_cover_every_lead_once_in_id_order(call):
    made = [call("create_lead", {"name": "Exp %d" % i, "email": email(), "value": 10.0 * i})
            for i in range(5)]
    closed = call("update_lead", made[0]["id"], {"status": "closed"})
    call("delete_lead", made[1]["id"])

    pages = export_all(lambda after, limit: call("export_leads", after, limit), 2)
    items = [lead for page in pages for lead in page["items"]]
    ids = [lead["id"] for lead in items]
    assert ids == sorted(ids, key=uuid.UUID) and len(ids) == len(set(ids))
    assert all(len(page["items"]) == 2 for page in pages[:-1]) and len(pages[-1]["items"]) <= 2
    by_id = {lead["id"]: lead for lead in items}
    assert made[1]["id"] not in by_id                      # deleted: absent
    assert by_id[made[0]["id"]] == closed                  # the same JSON as the other RPCs
    assert by_id[made[0]["id"]]["closedAt"] and by_id[made[0]["id"]]["updatedAt"]
    for lead in made[2:]:
        assert by_id[lead["id"]] == call("get_lead", lead["id"])
    # one big page holds the same leads, and says it is the last
    whole = call("export_leads", None, 5000)
    assert [lead["id"] for lead in whole["items"]] == ids and whole["next"] is None


def test_a_full_last_page_is_followed_by_an_empty_one(call):
    call("create_lead", {"name": "Exp", "email": email()})
    total = len(call("export_leads", None, 5000)["items"])
    page = call("export_leads", None, total)
    assert len(page["items"]) == total and page["next"] == page["items"][-1]["id"]
    assert call("export_leads", page["next"], total) == {"items": [], "next": None}


def test_bad_arguments_are_refused(call):
    for args in ((None, 0), (None, 5001), (None, "many"), ("not-an-id", 10)):
        with pytest.raises(InvalidLead):
            call("export_leads", *args)


def test_over_real_rpc_with_keyword_arguments(container, call, service_config):
    lead = call("create_lead", {"name": "Exp", "email": email()})
    with ServiceRpcProxy("leads", service_config, timeout=10) as leads:
        page = leads.export_leads(after_id=None, limit=5000)
        assert lead["id"] in [item["id"] for item in page["items"]]
        with pytest.raises(RemoteError) as exc:
            leads.export_leads(after_id="nope")
    assert exc.value.exc_type == "InvalidLead"
