"""Checking a task's lead or campaign with its owning service."""
from unittest.mock import Mock

import pytest
from nameko.exceptions import RemoteError

from crm_common.errors import Unavailable
from tasks.dependencies import RelatedRecords
from tasks.exceptions import InvalidTask

LEAD_ID = "0b6f3f5e-8a59-4c1b-9d0e-2f7d1f7c9a11"


@pytest.fixture
def proxies():
    return Mock(name="leads"), Mock(name="campaigns")


def test_general_tasks_ask_nobody(proxies):
    RelatedRecords(*proxies).ensure_exists("general", None)
    assert not proxies[0].mock_calls and not proxies[1].mock_calls


def test_an_existing_lead_passes(proxies):
    RelatedRecords(*proxies).ensure_exists("lead", LEAD_ID)
    proxies[0].get_lead.assert_called_once_with(LEAD_ID)


def test_a_campaign_is_asked_of_the_campaigns_service(proxies):
    RelatedRecords(*proxies).ensure_exists("campaign", LEAD_ID)
    proxies[1].get_campaign.assert_called_once_with(LEAD_ID)
    assert not proxies[0].mock_calls


@pytest.mark.parametrize("kind, proxy, method, error", [
    ("lead", 0, "get_lead", "LeadNotFound"),
    ("campaign", 1, "get_campaign", "CampaignNotFound"),
])
def test_a_missing_record_is_an_invalid_task_naming_related_to_id(proxies, kind, proxy, method,
                                                                  error):
    getattr(proxies[proxy], method).side_effect = RemoteError(error, "not found")
    with pytest.raises(InvalidTask) as exc:
        RelatedRecords(*proxies).ensure_exists(kind, LEAD_ID)
    assert exc.value.details["errors"] == [{"field": "relatedToId",
                                            "message": "no %s with this id" % kind}]


@pytest.mark.parametrize("failure", [Unavailable("no answer"),
                                     RemoteError("Unavailable", "database down")])
def test_an_unanswering_service_is_unavailable(proxies, failure):
    proxies[0].get_lead.side_effect = failure
    with pytest.raises(Unavailable):
        RelatedRecords(*proxies).ensure_exists("lead", LEAD_ID)


def test_an_unexpected_remote_error_is_not_mistaken_for_a_missing_record(proxies):
    proxies[0].get_lead.side_effect = RemoteError("KeyError", "boom")
    with pytest.raises(RemoteError):
        RelatedRecords(*proxies).ensure_exists("lead", LEAD_ID)
