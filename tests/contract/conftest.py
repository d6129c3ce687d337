"""The contract tests: the HTTP API against its own OpenAPI document
(schemathesis), bad input on every route, and a security walk.

One whole stack for the package, started as `make run` starts it
(crm_common.contract.stack_under_test: its own databases and vhost, a
generated API key and Meta secrets, a seeded fake Graph API), stopped after
the package. The tests walk the document: their `operation` parameter takes
the operations of the document the gateway generates (read at collection
time), and test_security.py checks that the stack serves that very document.
"""
import os
import uuid

import pytest
import requests
import sqlalchemy as sa

from crm_common.config import with_database
from crm_common.contract import generated_document, operations, stack_under_test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOG_PATH = os.path.join(ROOT, "contract-stack.log")
DOCUMENT = generated_document()
OPERATIONS = operations(DOCUMENT)


def pytest_generate_tests(metafunc):
    if "operation" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("operations")
        keep = marker.args[0] if marker else (lambda op: True)
        chosen = [op for op in OPERATIONS if keep(op)]
        metafunc.parametrize("operation", chosen, ids=[str(op) for op in chosen])


class Api:
    def __init__(self, url, key):
        self.url, self.key = url, key
        self.http = requests.Session()

    def request(self, method, path, key=None, auth=True, **kw):
        headers = kw.pop("headers", {})
        if auth:
            headers.setdefault("Authorization", "Bearer " + (key or self.key))
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.url + path, headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)


@pytest.fixture(scope="package")
def stack_and_graph():
    with stack_under_test(os.environ["CRM_DB_PREFIX"] + "_contract", LOG_PATH) as running:
        yield running


@pytest.fixture(scope="package")
def stack(stack_and_graph):
    return stack_and_graph[0]


@pytest.fixture(scope="package")
def graph(stack_and_graph):
    """The fake Graph API the stack reads (crm_common.fake_graph)."""
    return stack_and_graph[1]


@pytest.fixture(scope="package")
def document():
    return DOCUMENT


@pytest.fixture(scope="package")
def api(stack):
    return Api(stack.url, stack.env["CRM_API_KEY"])


@pytest.fixture(scope="package")
def gateway_db(stack):
    """An engine on the stack's own gateway database (`<prefix>_gateway`)."""
    server = stack.env.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432"
    engine = sa.create_engine(with_database(server, stack.env["CRM_DB_PREFIX"] + "_gateway"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="package")
def used_keys(api):
    """Every API key the stack has had (each is looked for in its log and
    database)."""
    return [api.key]


@pytest.fixture(scope="package")
def reset_key(gateway_db, api, used_keys):
    """Give the stack a new key the tests know, after a run that rotated it
    through the API: the key store's own rotation, on its database."""
    from gateway.keys import KeyStore

    def reset():
        api.key = KeyStore(gateway_db).regenerate()
        used_keys.append(api.key)
        return api.key
    return reset


@pytest.fixture(scope="module")
def records(api):
    """One record of each collection (a lead with an activity, a contact
    with a history item, a task, a synced campaign), new for each module:
    {collection: id}, for the routes with an {id}."""
    tag = uuid.uuid4().hex[:10]
    lead = api.post("/api/leads", json={"name": "Contract " + tag, "company": "Acme",
                                         "email": "contract.%s@example.com" % tag})
    assert lead.status_code == 201, lead.text
    lead_id = lead.json()["id"]
    assert api.post("/api/leads/%s/activity" % lead_id,
                    json={"type": "call", "title": "Intro"}).status_code == 201
    contact = api.post("/api/contacts", json={"name": "Contract " + tag,
                                              "email": "contact.%s@example.com" % tag})
    assert contact.status_code == 201, contact.text
    contact_id = contact.json()["id"]
    assert api.post("/api/contacts/%s/history" % contact_id,
                    json={"type": "meeting", "title": "Lunch"}).status_code == 201
    task = api.post("/api/tasks", json={"title": "Call " + tag, "relatedToType": "lead",
                                        "relatedToId": lead_id})
    assert task.status_code == 201, task.text
    campaigns = api.get("/api/campaigns").json()
    assert campaigns, "the stack's campaign sync found no campaign"
    return {"leads": lead_id, "contacts": contact_id, "tasks": task.json()["id"],
            "campaigns": campaigns[0]["id"]}
