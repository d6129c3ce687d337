"""The service's commands with every dependency a mock (worker_factory): the
checks that happen before anything is asked of another service or stored."""
import uuid

import pytest
from nameko.exceptions import RemoteError
from nameko.testing.services import worker_factory

from crm_common.testing import mock_store
from tasks.exceptions import InvalidTask
from tasks.service import TasksService

LEAD_ID = str(uuid.uuid4())


@pytest.fixture
def service():
    return worker_factory(TasksService, db=mock_store())


def session(service):
    return service.db.transaction.return_value.__enter__.return_value.session


@pytest.mark.parametrize("body", [
    {"title": "x", "related_to_type": "lead"},
    {"title": "x", "related_to_id": LEAD_ID},
    {"title": "", "related_to_type": "lead", "related_to_id": LEAD_ID},
    {"related_to_type": "lead", "related_to_id": LEAD_ID},
])
def test_a_malformed_task_is_refused_before_asking_leads_or_storing(service, body):
    with pytest.raises(InvalidTask):
        service.create_task(body)
    assert not service.leads.mock_calls
    session(service).add.assert_not_called()


def test_a_lead_task_asks_leads_for_the_lead_then_stores_and_publishes(service):
    task = service.create_task({"title": "Call", "related_to_type": "lead",
                                "related_to_id": LEAD_ID})
    service.leads.get_lead.assert_called_once_with(LEAD_ID)
    session(service).add.assert_called_once()
    tx = service.db.transaction.return_value.__enter__.return_value
    tx.emit.assert_called_once_with("task_created", {"task": task})
    tx.commit.assert_called_once()


def test_a_task_is_not_stored_when_the_lead_check_fails(service):
    service.leads.get_lead.side_effect = RemoteError("LeadNotFound", "No lead with this id.")
    with pytest.raises(InvalidTask):
        service.create_task({"title": "Call", "related_to_type": "lead", "related_to_id": LEAD_ID})
    session(service).add.assert_not_called()
