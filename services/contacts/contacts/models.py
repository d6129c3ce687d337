"""The contacts service's tables. Nothing outside this service reads them."""
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The lead activity vocabulary, so a contact's history reads like a lead's
# timeline. Contacts have no status, so clients may not log `status_change`.
HISTORY_TYPES = ("email_opened", "page_visit", "call", "note_created", "status_change", "meeting")
LOGGABLE_TYPES = tuple(t for t in HISTORY_TYPES if t != "status_change")


class Base(DeclarativeBase):
    # Index names as the migrations write them (contacts_name_idx, ...).
    metadata = sa.MetaData(naming_convention={"ix": "%(table_name)s_%(column_0_name)s_idx"})


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        sa.CheckConstraint("email = lower(email)", name="contact_email_lower_case"),
        # One contact per lead, so converting a lead twice (or twice at once)
        # finds the contact the first conversion made.
        sa.Index("contacts_lead_id_key", "lead_id", unique=True,
                 postgresql_where=sa.text("lead_id IS NOT NULL")),
        # The company filter matches case-insensitively.
        sa.Index("contacts_company_lower_idx", sa.text("lower(company)")),
        # "Most recently contacted first" is the sort this column is read by.
        sa.Index("contacts_last_contacted_idx", sa.text("last_contacted DESC NULLS LAST")),
        # Every other sort of the list reads an index in its order too (sort
        # column, then id, NULLs last both ways): a nullable column once per
        # direction, few-valued `role` with the id (migration 0004).
        sa.Index("contacts_last_contacted_asc_idx", "last_contacted"),
        sa.Index("contacts_company_desc_idx", sa.text("company DESC NULLS LAST")),
        sa.Index("contacts_role_id_idx", "role", "id"),
        sa.Index("contacts_role_id_desc_idx", sa.text("role DESC NULLS LAST"), sa.text("id DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    # Stored lower-cased; not unique (several people may share an inbox).
    email: Mapped[str] = mapped_column(sa.String(254), index=True)
    role: Mapped[str | None] = mapped_column(sa.String(200))
    company: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    phone: Mapped[str | None] = mapped_column(sa.String(50))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(pg.UUID(as_uuid=True))
    last_contacted: Mapped[sa.DateTime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True), index=True)
    updated_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True), index=True)


class HistoryItem(Base):
    """An interaction logged on a contact."""
    __tablename__ = "contact_history"
    __table_args__ = (
        sa.CheckConstraint(
            "type IN ('email_opened','page_visit','call','note_created','status_change','meeting')",
            name="history_type_known"),
        sa.Index("contact_history_timeline", "contact_id", sa.text("timestamp DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("contacts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(30))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    timestamp: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
