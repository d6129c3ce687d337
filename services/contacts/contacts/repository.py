"""Queries on the contacts tables (the only place that builds them)."""
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.ids import like_pattern, parse_id
from contacts.models import Contact, HistoryItem

# Sort keys the API offers, by their snake_case name.
SORT_COLUMNS = {
    "name": Contact.name, "email": Contact.email, "company": Contact.company,
    "role": Contact.role, "created_at": Contact.created_at, "updated_at": Contact.updated_at,
    "last_contacted": Contact.last_contacted,
}
DEFAULT_SORT = "-created_at"


class ContactRepository:
    def __init__(self, session):
        self.session = session

    def get(self, contact_id, for_update=False):
        key = parse_id(contact_id)
        if key is None:
            return None
        query = sa.select(Contact).where(Contact.id == key)
        if for_update:
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def add(self, contact):
        self.session.add(contact)
        self.session.flush()
        return contact

    def delete(self, contact):
        self.session.delete(contact)
        self.session.flush()

    def search(self, search=None, company=None, sort=DEFAULT_SORT, limit=100, offset=0):
        conditions = []
        if search:
            pattern = like_pattern(search)
            conditions.append(sa.or_(Contact.name.ilike(pattern, escape="\\"),
                                     Contact.email.ilike(pattern, escape="\\"),
                                     Contact.company.ilike(pattern, escape="\\")))
        if company:
            conditions.append(sa.func.lower(Contact.company) == sa.func.lower(company))

        descending = sort.startswith("-")
        column = SORT_COLUMNS[sort.lstrip("-")]
        order = column.desc() if descending else column.asc()
        if column.nullable:
            # NULLS LAST only where NULL can occur: on a NOT NULL column it
            # would stop PostgreSQL from reading the column's index in order.
            order = order.nulls_last()
        tiebreak = Contact.id.desc() if descending else Contact.id.asc()

        total = self.session.execute(
            sa.select(sa.func.count()).select_from(Contact).where(*conditions)).scalar()
        rows = self.session.execute(
            sa.select(Contact).where(*conditions).order_by(order, tiebreak)
            .limit(limit).offset(offset)).scalars().all()
        return rows, total

    # -- conversion of a lead ------------------------------------------------

    def by_lead(self, lead_id):
        return self.session.execute(
            sa.select(Contact).where(Contact.lead_id == lead_id)).scalar_one_or_none()

    def unlinked_by_email(self, email):
        """The oldest contact with `email` that no lead claims yet, locked.

        A concurrent conversion that links it first makes it drop out here
        (PostgreSQL re-checks the condition after the lock is granted).
        """
        return self.session.execute(
            sa.select(Contact).where(Contact.email == email, Contact.lead_id.is_(None))
            .order_by(Contact.created_at, Contact.id).limit(1)
            .with_for_update()).scalar_one_or_none()

    def add_for_lead(self, values):
        """Insert a contact for `values["lead_id"]` unless one exists (safe
        under concurrency: the partial unique index decides). Returns the new
        contact, or None when another transaction's contact holds the lead."""
        new_id = self.session.execute(
            pg_insert(Contact).values(**values)
            .on_conflict_do_nothing(index_elements=["lead_id"],
                                    index_where=Contact.lead_id.isnot(None))
            .returning(Contact.id)).scalar()
        return None if new_id is None else self.get(new_id)

    # -- history -------------------------------------------------------------

    def add_history(self, item):
        self.session.add(item)
        self.session.flush()
        return item

    def history(self, contact_id, limit=100, offset=0):
        condition = HistoryItem.contact_id == contact_id
        total = self.session.execute(
            sa.select(sa.func.count()).select_from(HistoryItem).where(condition)).scalar()
        rows = self.session.execute(
            sa.select(HistoryItem).where(condition)
            .order_by(HistoryItem.timestamp.desc(), HistoryItem.created_at.desc(),
                      HistoryItem.id.desc())
            .limit(limit).offset(offset)).scalars().all()
        return rows, total
