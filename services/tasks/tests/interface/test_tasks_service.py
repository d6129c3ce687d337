"""The tasks service's RPC and event interface against real PostgreSQL, with
real leads and campaigns services where a task points at one of their records
(and the outbox relay on the test broker)."""
import datetime as dt
import time
import uuid

import pytest
import sqlalchemy as sa
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from campaigns.service import CampaignsService
from crm_common.errors import Unavailable
from crm_common.testing import database_engine, entrypoint_caller
from leads.service import LeadsService
from tasks.dependencies import RELATED_CHECK_TIMEOUT
from tasks.exceptions import InvalidTask, TaskNotFound
from tasks.service import TasksService


@pytest.fixture
def container(container_factory, service_config):
    container = container_factory(TasksService, service_config)
    container.start()
    return container


@pytest.fixture
def call(container):
    return entrypoint_caller(container)


@pytest.fixture
def leads_container(container_factory, service_config):
    container = container_factory(LeadsService, service_config)
    container.start()
    return container


@pytest.fixture
def leads(leads_container):
    """Calls to a real leads service: `leads("create_lead", {...})`."""
    return entrypoint_caller(leads_container)


@pytest.fixture
def campaigns(container_factory, service_config):
    container = container_factory(CampaignsService, service_config)
    container.start()
    return container


@pytest.fixture
def no_tasks(container):
    """An empty tasks table, for tests that look at whole lists."""
    with database_engine(container).begin() as conn:
        conn.execute(sa.text("DELETE FROM tasks"))


def new_lead(leads):
    return leads("create_lead", {"name": "Alice", "email": "t.%s@example.com" % uuid.uuid4().hex})


def count_tasks(container):
    with database_engine(container).connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar()


def error_fields(exc):
    return [e["field"] for e in exc.value.details["errors"]]


# -- create and read ---------------------------------------------------------

def test_create_applies_defaults(call):
    task = call("create_task", {"title": "Call Alice"})
    assert task["description"] == "" and task["dueDate"] is None
    assert task["priority"] == "medium" and task["relatedToType"] == "general"
    assert task["completed"] is False and task["completedAt"] is None
    assert task["relatedToId"] is None
    assert task["createdAt"].endswith("Z") and task["updatedAt"] == task["createdAt"]
    assert call("get_task", task["id"]) == task


def test_due_date_comes_back_in_the_kind_it_was_sent(call):
    dated = call("create_task", {"title": "A", "due_date": "2030-01-02"})
    assert dated["dueDate"] == "2030-01-02"
    timed = call("create_task", {"title": "B", "due_date": "2030-01-02T10:00:00+02:00"})
    assert timed["dueDate"] == "2030-01-02T08:00:00.000Z"
    assert call("get_task", dated["id"])["dueDate"] == "2030-01-02"
    switched = call("update_task", dated["id"], {"due_date": "2030-01-03T09:30:00Z"})
    assert switched["dueDate"] == "2030-01-03T09:30:00.000Z"
    back = call("update_task", switched["id"], {"due_date": "2030-01-04"})
    assert back["dueDate"] == "2030-01-04"
    assert call("update_task", back["id"], {"due_date": None})["dueDate"] is None


@pytest.mark.parametrize("body, field", [
    ({}, "title"),
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": None}, "title"),
    ({"title": "x", "priority": "urgent"}, "priority"),
    ({"title": "x", "due_date": "next tuesday"}, "dueDate"),
    ({"title": "x", "due_date": "2030-02-30"}, "dueDate"),
    ({"title": "x", "completed": "yes"}, "completed"),
    ({"title": "x", "description": None}, "description"),
    ({"title": "x", "related_to_type": "deal"}, "relatedToType"),
    ({"title": "x", "related_to_type": "lead"}, "relatedToId"),
    ({"title": "x", "related_to_type": "lead", "related_to_id": "not-a-uuid"}, "relatedToId"),
    ({"title": "x", "related_to_id": str(uuid.uuid4())}, "relatedToId"),
    ({"title": "x", "owner": "me"}, "owner"),
])
def test_invalid_task_is_refused_naming_the_field_and_not_stored(call, container, body, field):
    before = count_tasks(container)
    with pytest.raises(InvalidTask) as exc:
        call("create_task", body)
    assert field in error_fields(exc)
    assert count_tasks(container) == before


def test_every_problem_is_named_at_once(call):
    with pytest.raises(InvalidTask) as exc:
        call("create_task", {"title": "", "priority": "urgent", "due_date": "soon"})
    assert sorted(error_fields(exc)) == ["dueDate", "priority", "title"]


# -- related records ---------------------------------------------------------

def test_a_task_can_point_at_an_existing_lead(call, leads):
    lead = new_lead(leads)
    task = call("create_task", {"title": "Call", "related_to_type": "lead",
                                "related_to_id": lead["id"]})
    assert task["relatedToType"] == "lead" and task["relatedToId"] == lead["id"]


def test_a_task_pointing_at_an_unknown_lead_is_refused(call, container, leads):
    before = count_tasks(container)
    with pytest.raises(InvalidTask) as exc:
        call("create_task", {"title": "Call", "related_to_type": "lead",
                             "related_to_id": str(uuid.uuid4())})
    assert error_fields(exc) == ["relatedToId"]
    assert count_tasks(container) == before


def test_without_a_leads_service_a_lead_task_is_unavailable_not_created(call, container):
    before = count_tasks(container)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        call("create_task", {"title": "Call", "related_to_type": "lead",
                             "related_to_id": str(uuid.uuid4())})
    assert time.monotonic() - started < RELATED_CHECK_TIMEOUT + 1
    assert count_tasks(container) == before


def test_a_task_pointing_at_an_unknown_campaign_is_refused(call, container, campaigns):
    with pytest.raises(InvalidTask) as exc:
        call("create_task", {"title": "Review", "related_to_type": "campaign",
                             "related_to_id": str(uuid.uuid4())})
    assert error_fields(exc) == ["relatedToId"]


def test_a_task_can_point_at_a_synced_campaign(call, campaigns):
    campaign_id = uuid.uuid4()
    with database_engine(campaigns).begin() as conn:      # as the Meta sync will write it
        conn.execute(sa.text(
            "INSERT INTO campaigns (id, meta_campaign_id, name, status, objective, last_synced_at,"
            " created_at, updated_at) VALUES (:id, :meta, 'Summer Sale', 'active', 'Sales', now(),"
            " now(), now())"), {"id": campaign_id, "meta": "1200%d" % time.time_ns()})
    task = call("create_task", {"title": "Review", "related_to_type": "campaign",
                                "related_to_id": str(campaign_id)})
    assert task["relatedToId"] == str(campaign_id)


def test_changing_the_relation_checks_the_new_record(call, leads):
    task = call("create_task", {"title": "Call"})
    with pytest.raises(InvalidTask) as exc:
        call("update_task", task["id"], {"related_to_type": "lead",
                                         "related_to_id": str(uuid.uuid4())})
    assert error_fields(exc) == ["relatedToId"]
    with pytest.raises(InvalidTask):
        call("update_task", task["id"], {"related_to_type": "lead"})
    lead = new_lead(leads)
    moved = call("update_task", task["id"], {"related_to_type": "lead", "related_to_id": lead["id"]})
    assert moved["relatedToId"] == lead["id"]
    with pytest.raises(InvalidTask):
        call("update_task", task["id"], {"related_to_id": str(uuid.uuid4())})
    with pytest.raises(InvalidTask):
        call("update_task", task["id"], {"related_to_type": "general", "related_to_id": lead["id"]})
    assert call("get_task", task["id"]) == moved
    general = call("update_task", task["id"], {"related_to_type": "general"})
    assert general["relatedToType"] == "general" and general["relatedToId"] is None


# -- update and delete -------------------------------------------------------

def test_completing_sets_completed_at_and_publishes_task_completed(call, event_tap):
    events = event_tap("tasks")
    task = call("create_task", {"title": "Send deck", "due_date": "2030-01-02"})
    done = call("update_task", task["id"], {"completed": True})
    assert done["completed"] is True and done["completedAt"].endswith("Z")
    _, completed = events.wait(lambda k, b: k == "task_completed" and b["task"]["id"] == task["id"])
    assert completed["task"] == done
    uuid.UUID(completed["event_id"])
    again = call("update_task", task["id"], {"completed": True})
    assert again == done                                  # already done: completedAt kept
    undone = call("update_task", task["id"], {"completed": False})
    assert undone["completed"] is False and undone["completedAt"] is None
    events.wait(lambda k, b: k == "task_updated" and b["task"] == undone)
    events.drain(0.5)
    assert [k for k, b, _ in events.events if b["task"]["id"] == task["id"]] == [
        "task_created", "task_updated", "task_completed", "task_updated"]


def test_update_is_partial(call):
    task = call("create_task", {"title": "Call", "description": "about the offer",
                                "priority": "high", "due_date": "2030-01-02"})
    updated = call("update_task", task["id"], {"title": "Call back"})
    assert updated["title"] == "Call back"
    assert {k: v for k, v in updated.items() if k not in ("title", "updatedAt")} == \
        {k: v for k, v in task.items() if k not in ("title", "updatedAt")}


def test_an_update_that_changes_nothing_writes_nothing(call, event_tap):
    events = event_tap("tasks", "task_updated")
    task = call("create_task", {"title": "Same"})
    again = call("update_task", task["id"], {"title": "Same", "completed": False})
    assert again["updatedAt"] == task["updatedAt"]
    events.drain(0.5)
    assert not [b for _, b, _ in events.events if b["task"]["id"] == task["id"]]


@pytest.mark.parametrize("changes, field", [
    ({"title": None}, "title"), ({"priority": "urgent"}, "priority"),
    ({"completed": None}, "completed"), ({"due_date": "tomorrow"}, "dueDate"),
    ({"created_at": "2024-01-01T00:00:00Z"}, "created_at"),
])
def test_invalid_update_is_refused_and_changes_nothing(call, changes, field):
    task = call("create_task", {"title": "Keep"})
    with pytest.raises(InvalidTask) as exc:
        call("update_task", task["id"], changes)
    assert error_fields(exc) == [field]
    assert call("get_task", task["id"]) == task


def test_delete_removes_the_task_and_publishes_it(call, event_tap):
    events = event_tap("tasks", "task_deleted")
    task = call("create_task", {"title": "Gone"})
    call("delete_task", task["id"])
    with pytest.raises(TaskNotFound):
        call("get_task", task["id"])
    with pytest.raises(TaskNotFound):
        call("delete_task", task["id"])
    _, body = events.wait(lambda k, b: b["task"]["id"] == task["id"])
    assert body["task"] == task


def test_unknown_and_malformed_ids_are_not_found(call):
    for task_id in (str(uuid.uuid4()), "not-a-uuid", "1' OR 1=1"):
        with pytest.raises(TaskNotFound):
            call("get_task", task_id)
        with pytest.raises(TaskNotFound):
            call("update_task", task_id, {"title": "x"})
        with pytest.raises(TaskNotFound):
            call("delete_task", task_id)


# -- lists -------------------------------------------------------------------

def ids(result):
    return [t["id"] for t in result["items"]]


def test_default_sort_is_by_the_moment_due_undated_last(call, no_tasks):
    made = {name: call("create_task", dict({"title": name}, **fields)) for name, fields in [
        ("undated", {}),
        ("day-2", {"due_date": "2030-01-02"}),
        ("day-3-midnight", {"due_date": "2030-01-03T00:00:00Z"}),
        ("day-2-10am", {"due_date": "2030-01-02T10:00:00Z"}),
        ("day-1", {"due_date": "2030-01-01"}),
    ]}
    order = [made[n]["id"] for n in ("day-1", "day-2-10am", "day-2", "day-3-midnight", "undated")]
    assert ids(call("list_tasks", {})) == order
    descending = [made[n]["id"] for n in ("day-3-midnight", "day-2", "day-2-10am", "day-1",
                                          "undated")]
    assert ids(call("list_tasks", {"sort": "-due_date"})) == descending


def test_priority_sorts_by_urgency(call, no_tasks):
    made = {p: call("create_task", {"title": p, "priority": p}) for p in ("medium", "high", "low")}
    assert ids(call("list_tasks", {"sort": "-priority"})) == [
        made[p]["id"] for p in ("high", "medium", "low")]
    assert ids(call("list_tasks", {"sort": "priority"})) == [
        made[p]["id"] for p in ("low", "medium", "high")]


def test_other_sorts(call, no_tasks):
    b = call("create_task", {"title": "b"})
    a = call("create_task", {"title": "a"})
    call("update_task", b["id"], {"completed": True})
    assert ids(call("list_tasks", {"sort": "title"})) == [a["id"], b["id"]]
    assert ids(call("list_tasks", {"sort": "-created_at"})) == [a["id"], b["id"]]
    assert ids(call("list_tasks", {"sort": "-updated_at"})) == [b["id"], a["id"]]
    assert ids(call("list_tasks", {"sort": "-completed_at"})) == [b["id"], a["id"]]


def test_overdue_is_open_and_due_before_today_or_before_now(call, no_tasks):
    def make(title, **fields):
        return call("create_task", dict({"title": title}, **fields))["id"]

    now = dt.datetime.now(dt.timezone.utc)
    today = now.date()
    yesterday = make("yesterday", due_date=(today - dt.timedelta(days=1)).isoformat())
    a_minute_ago = make("a minute ago", due_date=(now - dt.timedelta(minutes=1)).isoformat())
    due_today = make("today", due_date=today.isoformat())
    in_an_hour = make("in an hour", due_date=(now + dt.timedelta(hours=1)).isoformat())
    undated = make("undated")
    done = make("done late", due_date=(today - dt.timedelta(days=3)).isoformat(), completed=True)
    assert set(ids(call("list_tasks", {"overdue": True}))) == {yesterday, a_minute_ago}
    assert set(ids(call("list_tasks", {"overdue": False}))) == {due_today, in_an_hour, undated, done}


def test_filters_and_paging(call, leads, no_tasks):
    lead = new_lead(leads)
    mine = [call("create_task", {"title": "mine %d" % i, "related_to_type": "lead",
                                 "related_to_id": lead["id"], "due_date": "2030-01-0%d" % (i + 1),
                                 "priority": "high" if i else "low"}) for i in range(3)]
    other = call("create_task", {"title": "other", "priority": "high"})
    call("update_task", mine[0]["id"], {"completed": True})
    assert ids(call("list_tasks", {"related_to_id": lead["id"]})) == [t["id"] for t in mine]
    assert ids(call("list_tasks", {"related_to_type": "general"})) == [other["id"]]
    assert ids(call("list_tasks", {"completed": True})) == [mine[0]["id"]]
    assert call("list_tasks", {"completed": False})["total"] == 3
    assert ids(call("list_tasks", {"priority": "high", "related_to_type": "lead"})) == [
        mine[1]["id"], mine[2]["id"]]
    page = call("list_tasks", {"limit": 2, "offset": 1})
    assert page["total"] == 4 and ids(page) == [mine[1]["id"], mine[2]["id"]]
    assert call("list_tasks", {"offset": 10}) == {"items": [], "total": 4}


@pytest.mark.parametrize("query, field", [
    ({"sort": "password"}, "sort"), ({"priority": "urgent"}, "priority"),
    ({"completed": "maybe"}, "completed"), ({"related_to_id": "x"}, "relatedToId"),
    ({"limit": 0}, "limit"), ({"owner": "me"}, "owner"),
])
def test_bad_list_queries_are_refused(call, query, field):
    with pytest.raises(InvalidTask) as exc:
        call("list_tasks", query)
    assert error_fields(exc) == [field]


# -- a deleted lead ----------------------------------------------------------

def handled(lead_id):
    """An entrypoint_waiter callback: the handler ran for this lead."""
    def check(worker_ctx, result, exc_info):
        return worker_ctx.args[0]["lead"]["id"] == lead_id
    return check


def test_deleting_a_lead_deletes_its_open_tasks_and_keeps_completed_ones(
        call, container, leads, event_tap):
    events = event_tap("tasks", "task_deleted")
    lead, other_lead = new_lead(leads), new_lead(leads)

    def task_for(some_lead, title):
        return call("create_task", {"title": title, "related_to_type": "lead",
                                    "related_to_id": some_lead["id"]})

    open_task, done_task = task_for(lead, "open"), task_for(lead, "done")
    done_task = call("update_task", done_task["id"], {"completed": True})
    bystander = task_for(other_lead, "other lead's")

    with entrypoint_waiter(container, "on_lead_deleted", timeout=10, callback=handled(lead["id"])):
        leads("delete_lead", lead["id"])          # the real leads.lead_deleted event
    with pytest.raises(TaskNotFound):
        call("get_task", open_task["id"])
    assert call("get_task", done_task["id"]) == done_task
    assert call("get_task", bystander["id"]) == bystander
    _, body = events.wait(lambda k, b: b["task"]["id"] == open_task["id"])
    assert body["task"] == open_task

    # A redelivered event changes nothing more.
    with entrypoint_hook(container, "on_lead_deleted") as redeliver:
        redeliver({"lead": {"id": lead["id"]}})
    events.drain(0.5)
    assert [b["task"]["id"] for _, b, _ in events.events
            if b["task"]["id"] in (open_task["id"], done_task["id"])] == [open_task["id"]]
    assert call("get_task", done_task["id"]) == done_task

    # The kept task is history: editable, but it cannot reopen onto a lead that is gone.
    assert call("update_task", done_task["id"], {"title": "done (lead gone)"})["title"] == \
        "done (lead gone)"
    with pytest.raises(InvalidTask) as exc:
        call("update_task", done_task["id"], {"completed": False})
    assert error_fields(exc) == ["relatedToId"]


def test_a_malformed_lead_deleted_event_changes_nothing(call, container):
    task = call("create_task", {"title": "Stay"})
    for payload in ({}, {"lead": None}, {"lead": {"id": "not-a-uuid"}}):
        with entrypoint_hook(container, "on_lead_deleted") as handle:
            handle(payload)
    assert call("get_task", task["id"]) == task
