"""End to end across services: conversion (leads → contacts) and a deleted
lead's open tasks (leads → event → tasks)."""
import uuid

from crm_common.testing import wait_for


def test_a_converted_lead_becomes_one_contact_with_a_note(api):
    lead = api.post("/api/leads", json={"name": "Conv", "email": "conv.%s@example.com"
                                        % uuid.uuid4().hex[:8], "jobTitle": "CFO"}).json()
    first = api.post("/api/leads/%s/convert" % lead["id"])
    assert first.status_code == 201, first.text
    contact = first.json()
    assert contact["leadId"] == lead["id"] and contact["role"] == "CFO"
    assert first.headers["Location"].endswith("/api/contacts/" + contact["id"])
    again = api.post("/api/leads/%s/convert" % lead["id"])
    assert again.status_code == 200 and again.json()["id"] == contact["id"]
    assert api.get("/api/contacts/" + contact["id"]).json()["email"] == lead["email"]
    timeline = api.get("/api/leads/%s/activity" % lead["id"]).json()
    assert [a["type"] for a in timeline].count("note_created") == 1


def test_deleting_a_lead_removes_its_open_tasks_and_keeps_done_ones(api):
    lead = api.post("/api/leads", json={"name": "Gone", "email": "gone.%s@example.com"
                                        % uuid.uuid4().hex[:8]}).json()

    def task(title, **extra):
        r = api.post("/api/tasks", json=dict(title=title, relatedToType="lead",
                                             relatedToId=lead["id"], **extra))
        assert r.status_code == 201, r.text
        return r.json()

    open_task = task("Call", dueDate="2020-01-01")
    done_task = task("Sent deck")
    assert api.patch("/api/tasks/" + done_task["id"], json={"completed": True}).status_code == 200
    assert api.delete("/api/leads/" + lead["id"]).status_code == 204

    wait_for(lambda: api.get("/api/tasks/" + open_task["id"]).status_code == 404, timeout=15,
             every=0.2, what="the open task of the deleted lead to go")
    assert api.get("/api/tasks/" + done_task["id"]).status_code == 200
    overdue = {t["id"] for t in api.get("/api/tasks", params={"overdue": "true",
                                                              "limit": 1000}).json()}
    assert open_task["id"] not in overdue


def test_a_task_for_an_unknown_lead_is_refused(api):
    r = api.post("/api/tasks", json={"title": "x", "relatedToType": "lead",
                                     "relatedToId": str(uuid.uuid4())})
    assert r.status_code == 422
    assert "relatedToId" in {e["field"] for e in r.json()["errors"]}
