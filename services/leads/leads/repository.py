"""Queries on the leads tables (the only place that builds them)."""
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.ids import like_pattern, parse_id
from leads.models import Activity, Lead

# Sort keys the API offers, by their snake_case name.
SORT_COLUMNS = {
    "name": Lead.name, "email": Lead.email, "company": Lead.company, "status": Lead.status,
    "source": Lead.source, "score": Lead.score, "value": Lead.value,
    "created_at": Lead.created_at, "updated_at": Lead.updated_at,
    "last_interaction_at": Lead.last_interaction_at,
}
DEFAULT_SORT = "-created_at"
# Reads that only serialize leads select the columns, not ORM objects: rows
# have the same attributes (lead_to_dict takes either) and cost a fraction.
LEAD_ROWS = sa.select(*Lead.__table__.columns)


class LeadRepository:
    def __init__(self, session):
        self.session = session

    def get(self, lead_id, for_update=False):
        key = parse_id(lead_id)
        if key is None:
            return None
        query = sa.select(Lead).where(Lead.id == key)
        if for_update:
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def row(self, lead_id):
        """The lead as a read-only row (None when there is none)."""
        key = parse_id(lead_id)
        if key is None:
            return None
        return self.session.execute(LEAD_ROWS.where(Lead.id == key)).one_or_none()

    def id_by_email(self, email):
        return self.session.execute(sa.select(Lead.id).where(Lead.email == email)).scalar()

    def add(self, lead):
        self.session.add(lead)
        self.session.flush()
        return lead

    def delete(self, lead):
        self.session.delete(lead)
        self.session.flush()

    def search(self, status=None, search=None, source=None, owner_id=None, min_score=None,
               sort=DEFAULT_SORT, limit=100, offset=0):
        conditions = []
        if status:
            conditions.append(Lead.status.in_(list(status)))
        if search:
            pattern = like_pattern(search)
            conditions.append(sa.or_(Lead.name.ilike(pattern, escape="\\"),
                                     Lead.email.ilike(pattern, escape="\\"),
                                     Lead.company.ilike(pattern, escape="\\")))
        if source:
            conditions.append(Lead.source == source)
        if owner_id:
            conditions.append(Lead.owner_id == owner_id)
        if min_score is not None:
            conditions.append(Lead.score >= min_score)

        descending = sort.startswith("-")
        column = SORT_COLUMNS[sort.lstrip("-")]
        order = column.desc() if descending else column.asc()
        if column.nullable:
            # NULLS LAST only where NULL can occur: on a NOT NULL column it
            # would stop PostgreSQL from reading the column's index in order.
            order = order.nulls_last()
        tiebreak = Lead.id.desc() if descending else Lead.id.asc()

        total = self.session.execute(
            sa.select(sa.func.count()).select_from(Lead).where(*conditions)).scalar()
        rows = self.session.execute(
            LEAD_ROWS.where(*conditions).order_by(order, tiebreak)
            .limit(limit).offset(offset)).all()
        return rows, total

    def export_page(self, after_id=None, limit=1000):
        """Leads in id order after `after_id` (keyset paging, for rebuilds)."""
        query = sa.select(Lead)
        if after_id is not None:
            query = query.where(Lead.id > after_id)
        return self.session.execute(query.order_by(Lead.id).limit(limit)).scalars().all()

    def add_activity(self, activity):
        self.session.add(activity)
        self.session.flush()
        return activity

    def add_activity_once(self, values):
        """Insert an activity unless one with its `reference` exists on the
        lead (safe under concurrency); True when it was inserted."""
        inserted = self.session.execute(
            pg_insert(Activity).values(**values)
            .on_conflict_do_nothing(index_elements=["lead_id", "reference"],
                                    index_where=Activity.reference.isnot(None))
            .returning(Activity.id)).scalar()
        return inserted is not None

    def timeline(self, lead_id, limit=100, offset=0):
        condition = Activity.lead_id == lead_id
        total = self.session.execute(
            sa.select(sa.func.count()).select_from(Activity).where(condition)).scalar()
        rows = self.session.execute(
            sa.select(Activity).where(condition)
            .order_by(Activity.timestamp.desc(), Activity.created_at.desc(), Activity.id.desc())
            .limit(limit).offset(offset)).scalars().all()
        return rows, total
