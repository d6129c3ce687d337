"""Queries on the campaigns table (the only place that builds them)."""
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from campaigns.models import Campaign, CampaignDay
from crm_common.ids import parse_id


class CampaignRepository:
    def __init__(self, session):
        self.session = session

    def get(self, campaign_id):
        key = parse_id(campaign_id)
        if key is None:
            return None
        return self.session.execute(sa.select(Campaign).where(Campaign.id == key)).scalar_one_or_none()


def _batches(rows, size=1000):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


class SyncRepository:
    """The sync's writes: campaigns matched on Meta's id, days upserted."""

    def __init__(self, session):
        self.session = session

    def has_days(self):
        return self.session.execute(sa.select(sa.exists().where(CampaignDay.date.isnot(None)))
                                    ).scalar()

    def upsert_campaigns(self, values, now, keep_existing=False):
        """{meta id: (Campaign, changed)}. `keep_existing`: a known campaign
        is only marked synced, its fields kept (placeholders)."""
        ids = [v["meta_campaign_id"] for v in values]
        existing = {}
        for batch in _batches(ids):
            for campaign in self.session.execute(
                    sa.select(Campaign).where(Campaign.meta_campaign_id.in_(batch))).scalars():
                existing[campaign.meta_campaign_id] = campaign
        result = {}
        for value in values:
            campaign = existing.get(value["meta_campaign_id"])
            if campaign is None:
                campaign = Campaign(created_at=now, updated_at=now, last_synced_at=now, **value)
                self.session.add(campaign)
                changed = True
            else:
                changed = not keep_existing and any(
                    getattr(campaign, k) != v for k, v in value.items())
                if changed:
                    for key, v in value.items():
                        setattr(campaign, key, v)
                    campaign.updated_at = now
                campaign.last_synced_at = now
            result[value["meta_campaign_id"]] = (campaign, changed)
        self.session.flush()
        return result

    def upsert_days(self, rows):
        """Insert or replace each (campaign_id, date) row; returns the rows
        that were new or differ from what was stored."""
        changed = []
        for batch in _batches(rows):
            stmt = pg_insert(CampaignDay).values(batch)
            metrics = ("spend", "impressions", "clicks", "leads", "revenue")
            differs = sa.or_(*[getattr(CampaignDay, m).is_distinct_from(getattr(stmt.excluded, m))
                               for m in metrics])
            stmt = stmt.on_conflict_do_update(
                index_elements=["campaign_id", "date"],
                set_={m: getattr(stmt.excluded, m) for m in metrics + ("updated_at",)},
                where=differs).returning(CampaignDay)
            changed.extend(self.session.execute(
                stmt, execution_options={"populate_existing": True}).scalars().all())
        return changed

    def refresh_totals(self, campaign_ids=None):
        """Sum the days of these campaigns (all when None) into their totals."""
        if campaign_ids is not None and not campaign_ids:
            return
        conditions = [] if campaign_ids is None else [
            CampaignDay.campaign_id.in_(list(campaign_ids))]
        sums = (sa.select(CampaignDay.campaign_id,
                          *[sa.func.sum(getattr(CampaignDay, m)).label(m) for m in METRICS])
                .where(*conditions).group_by(CampaignDay.campaign_id).subquery("sums"))
        self.session.execute(
            sa.update(Campaign).where(Campaign.id == sums.c.campaign_id)
            .values({TOTAL_COLUMNS[m]: getattr(sums.c, m) for m in METRICS})
            .execution_options(synchronize_session=False))


METRICS = ("spend", "impressions", "clicks", "leads", "revenue")
# Each metric summed over all of a campaign's days, kept on the campaign.
TOTAL_COLUMNS = {m: getattr(Campaign, "total_" + m) for m in METRICS}
# Sort keys the API offers, by their snake_case name (metrics sort on the sums).
SORT_KEYS = ("name", "status", "objective", "last_synced_at") + METRICS
DEFAULT_SORT = "-spend"


class CampaignReadRepository:
    """Campaigns with their metrics summed over daily rows in a date range."""

    def __init__(self, session):
        self.session = session

    def _sums(self, start=None, end=None):
        conditions = []
        if start is not None:
            conditions.append(CampaignDay.date >= start)
        if end is not None:
            conditions.append(CampaignDay.date <= end)
        return (sa.select(CampaignDay.campaign_id,
                          *[sa.func.sum(getattr(CampaignDay, m)).label(m) for m in METRICS])
                .where(*conditions).group_by(CampaignDay.campaign_id).subquery("sums"))

    def search(self, status=None, start=None, end=None, sort=DEFAULT_SORT, limit=100, offset=0):
        """([(Campaign, {metric: sum})], total); every campaign is listed,
        with zeros where it has no day in the range. Without a range, the
        totals kept on the campaigns: no day is read."""
        ranged = start is not None or end is not None
        if ranged:
            sums = self._sums(start, end)
            metrics = [sa.func.coalesce(getattr(sums.c, m), 0).label(m) for m in METRICS]
        else:
            metrics = [TOTAL_COLUMNS[m].label(m) for m in METRICS]
        conditions = [Campaign.status.in_(list(status))] if status else []
        name = sort.lstrip("-")
        column = dict(zip(METRICS, metrics)).get(name)
        if column is None:
            column = getattr(Campaign, name)
        descending = sort.startswith("-")
        order = column.desc() if descending else column.asc()
        if name == "objective":
            order = order.nulls_last()
        tiebreak = Campaign.id.desc() if descending else Campaign.id.asc()
        total = self.session.execute(
            sa.select(sa.func.count()).select_from(Campaign).where(*conditions)).scalar()
        query = sa.select(Campaign, *metrics)
        if ranged:
            query = query.outerjoin(sums, sums.c.campaign_id == Campaign.id)
        rows = self.session.execute(
            query.where(*conditions).order_by(order, tiebreak).limit(limit).offset(offset)).all()
        return [(row[0], dict(zip(METRICS, row[1:]))) for row in rows], total

    @staticmethod
    def totals(campaign):
        """{metric: sum over all days}, as kept on the campaign."""
        return {m: getattr(campaign, "total_" + m) for m in METRICS}

    def days(self, campaign_id):
        return self.session.execute(
            sa.select(CampaignDay).where(CampaignDay.campaign_id == campaign_id)
            .order_by(CampaignDay.date)).scalars().all()
