"""The leads service's tables. Nothing outside this service reads them."""
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STATUSES = ("new", "contacted", "qualified", "proposal", "closed")
ACTIVITY_TYPES = ("email_opened", "page_visit", "call", "note_created", "status_change", "meeting")


class Base(DeclarativeBase):
    # Index names as the migrations write them (leads_created_at_idx, ...).
    metadata = sa.MetaData(naming_convention={"ix": "%(table_name)s_%(column_0_name)s_idx"})


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        sa.CheckConstraint("status IN ('new','contacted','qualified','proposal','closed')",
                           name="lead_status_known"),
        sa.CheckConstraint("score BETWEEN 0 AND 100", name="lead_score_range"),
        sa.CheckConstraint("value >= 0", name="lead_value_not_negative"),
        sa.CheckConstraint("email = lower(email)", name="lead_email_lower_case"),
        sa.Index("leads_meta_leadgen_id", "meta_leadgen_id", unique=True,
                 postgresql_where=sa.text("meta_leadgen_id IS NOT NULL")),
        # Every sort of the list reads an index in its order (sort column,
        # then id); the few-valued columns with the id, so a page never sorts
        # a whole group of equal values; nullable ones once per direction,
        # NULLs last both ways (migration 0006).
        sa.Index("leads_status_id_idx", "status", "id"),
        sa.Index("leads_source_id_idx", "source", "id"),
        sa.Index("leads_score_id_idx", "score", "id"),
        sa.Index("leads_value_id_idx", "value", "id"),
        sa.Index("leads_company_desc_idx", sa.text("company DESC NULLS LAST")),
        sa.Index("leads_last_interaction_at_desc_idx",
                 sa.text("last_interaction_at DESC NULLS LAST")),
    )

    id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    # Stored lower-cased, so the unique index makes email case-insensitively unique.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(50))
    company: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    job_title: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(20), default="new")
    source: Mapped[str] = mapped_column(sa.String(100), default="Manual")
    score: Mapped[int] = mapped_column(sa.Integer)
    value: Mapped[float] = mapped_column(sa.Numeric(14, 2), default=0)
    owner_id: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    created_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True), index=True)
    updated_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True), index=True)
    last_interaction_at: Mapped[sa.DateTime | None] = mapped_column(sa.DateTime(timezone=True),
                                                                    index=True)
    # Set when the status becomes `closed` (won), cleared when it is reopened.
    closed_at: Mapped[sa.DateTime | None] = mapped_column(sa.DateTime(timezone=True))
    # Where a lead from a Meta lead ad came from (null for every other lead).
    # One lead per lead-gen submission: a unique index on meta_leadgen_id.
    meta_leadgen_id: Mapped[str | None] = mapped_column(sa.String(64))
    meta_form_id: Mapped[str | None] = mapped_column(sa.String(64))
    meta_ad_id: Mapped[str | None] = mapped_column(sa.String(64))
    meta_campaign_id: Mapped[str | None] = mapped_column(sa.String(64))
    meta_page_id: Mapped[str | None] = mapped_column(sa.String(64))

    activities = relationship("Activity", back_populates="lead", passive_deletes=True)


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (
        sa.CheckConstraint(
            "type IN ('email_opened','page_visit','call','note_created','status_change','meeting')",
            name="activity_type_known"),
        sa.Index("activities_lead_timeline", "lead_id", sa.text("timestamp DESC")),
        sa.Index("activities_lead_reference", "lead_id", "reference", unique=True,
                 postgresql_where=sa.text("reference IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("leads.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(30))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    timestamp: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    # Set on activities the system records for a fact elsewhere ("contact:<id>"),
    # unique per lead: recording the same fact twice adds nothing.
    reference: Mapped[str | None] = mapped_column(sa.String(100))

    lead = relationship("Lead", back_populates="activities")


LEAD_AD_STATES = ("pending", "done", "failed")


class LeadAdSubmission(Base):
    """A Meta lead-ad submission (one `leadgen` change of the webhook), from
    the moment it is received until it is a lead: the durable intake.

    `pending` rows are fetched from the Graph API by whichever instance claims
    them (`claimed_until`, a lease that a dead process lets expire) when
    `next_attempt_at` comes; `done` rows name the lead they made or matched;
    `failed` rows are those the Graph API refused or that stayed unreachable
    through every attempt: listed, and retried on demand, never dropped.
    """
    __tablename__ = "lead_ad_submissions"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending','done','failed')", name="lead_ad_status_known"),
        sa.Index("lead_ad_submissions_due", "next_attempt_at",
                 postgresql_where=sa.text("status = 'pending'")),
        sa.Index("lead_ad_submissions_status", "status", sa.text("received_at DESC")),
    )

    leadgen_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    page_id: Mapped[str | None] = mapped_column(sa.String(64))
    form_id: Mapped[str | None] = mapped_column(sa.String(64))
    ad_id: Mapped[str | None] = mapped_column(sa.String(64))
    received_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    # the webhook delivery's (the gateway's X-Request-ID): see crm_common.telemetry
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    claimed_until: Mapped[sa.DateTime | None] = mapped_column(sa.DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # What the Graph API answered (kept so a failed mapping can be read and fixed by hand).
    graph_lead: Mapped[dict | None] = mapped_column(pg.JSONB)
    # The lead made (`created`) or found by its email (`matched`); not a
    # foreign key: the lead may be deleted later, the submission stays done.
    lead_id: Mapped[uuid.UUID | None] = mapped_column(pg.UUID(as_uuid=True))
    outcome: Mapped[str | None] = mapped_column(sa.String(10))
    updated_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
