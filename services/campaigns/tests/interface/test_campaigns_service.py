"""The campaigns service's lookups against real PostgreSQL. Until the Meta
sync is built the table is empty, so rows here are written as it will write them."""
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from campaigns.exceptions import CampaignNotFound
from campaigns.service import CampaignsService
from crm_common.testing import database_engine, entrypoint_caller


@pytest.fixture
def container(container_factory, service_config):
    container = container_factory(CampaignsService, service_config)
    container.start()
    return container


@pytest.fixture
def call(container):
    return entrypoint_caller(container)


def test_ping(call):
    assert call("ping") == {"status": "ok"}


def test_unknown_and_malformed_ids_are_not_found(call):
    for campaign_id in (str(uuid.uuid4()), "not-a-uuid", "1' OR 1=1", None):
        with pytest.raises(CampaignNotFound):
            call("get_campaign", campaign_id)


def test_a_synced_campaign_is_returned_in_camel_case(call, container):
    campaign_id, meta_id = uuid.uuid4(), str(uuid.uuid4().int)
    synced = dt.datetime(2024, 3, 10, 10, 0, tzinfo=dt.timezone.utc)
    engine = database_engine(container)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO campaigns (id, meta_campaign_id, name, status, objective, last_synced_at,"
            " created_at, updated_at) VALUES (:id, :meta, 'Summer Sale', 'active', 'Sales', :at,"
            " :at, :at)"), {"id": campaign_id, "meta": meta_id, "at": synced})
    campaign = call("get_campaign", str(campaign_id))
    assert campaign == {"id": str(campaign_id), "metaCampaignId": meta_id,
                        "name": "Summer Sale", "status": "active", "objective": "Sales",
                        "lastSyncedAt": "2024-03-10T10:00:00.000Z"}
