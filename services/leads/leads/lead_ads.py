"""Meta lead ads: from a webhook's `leadgen` change to exactly one lead
(contract section 4; docs/lead-ads.md).

The gateway checks the signature and puts each delivery on a durable queue;
the leads service records every `leadgen` change as a `lead_ad_submissions`
row (the leadgen id is its primary key, so redeliveries add nothing), then
fetches the submission from the Graph API and makes the lead. A fetch that
fails transiently is tried again later (`RetryPolicy`: exponential backoff
with jitter, bounded), by whichever instance claims the row when it is due;
a refusal, or a fetch that never succeeds, leaves the row `failed`, listed by
`list_submissions` (RPC `list_lead_ads`, `python -m leads.lead_ads_cli list`)
and retried on demand. Each function below is one command in one transaction.
"""
import datetime as dt
import logging
import random
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.timefmt import parse_timestamp, utcnow
from leads import handlers
from leads.exceptions import DuplicateEmail, InvalidLead
from leads.models import Lead, LeadAdSubmission
from leads.repository import LeadRepository
from leads.schemas import lead_to_dict, submission_to_dict

log = logging.getLogger(__name__)

SOURCE = "Facebook Ad"
GRAPH_FIELDS = "field_data,created_time,ad_id,form_id,campaign_id"
ID_MAX = 64
EMAIL_MAX = 254
# Contract fields -> the lead's columns and their sizes.
MAPPED = {"full_name": None, "first_name": None, "last_name": None, "email": None,
          "phone_number": ("phone", 50), "company_name": ("company", 200),
          "job_title": ("job_title", 200)}
NOTE_MAX = 5000


@dataclass(frozen=True)
class RetryPolicy:
    """When to fetch a submission again after a transient failure: after
    attempt n, wait `backoff * 2**(n-1)` seconds (at most `max_backoff`,
    with +-20 % jitter so a burst does not retry in step); give up after
    `max_attempts`. The defaults cover about two hours of Graph outage."""
    max_attempts: int = 15
    backoff: float = 1.0
    max_backoff: float = 900.0
    lease: float = 30.0          # how long a claim lasts (longer than one fetch can take: 13 s)

    def delay(self, attempt):
        base = min(self.max_backoff, self.backoff * 2 ** max(attempt - 1, 0))
        return base * random.uniform(0.8, 1.2)


class UnusableSubmission(Exception):
    """The Graph API answered, but not with a lead we can make (e.g. no email)."""


# ---- the webhook's changes --------------------------------------------------

def _id(value):
    """A Meta id as text: they arrive as JSON strings or numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, float) and value.is_integer():
        value = str(int(value))
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value and len(value) <= ID_MAX and value.isdigit() else None


def submissions_of(delivery):
    """The `leadgen` changes of a delivery (the message the gateway queued):
    [{"leadgen_id", "page_id", "form_id", "ad_id"}], one per leadgen id, in
    order. Changes without a usable leadgen id are skipped (and logged)."""
    found = {}
    for change in (delivery or {}).get("changes") or []:
        leadgen_id = _id(change.get("leadgen_id")) if isinstance(change, dict) else None
        if leadgen_id is None:
            log.warning("lead ad change without a usable leadgen_id skipped: %r", change)
            continue
        found.setdefault(leadgen_id, {"leadgen_id": leadgen_id,
                                      "page_id": _id(change.get("page_id")),
                                      "form_id": _id(change.get("form_id")),
                                      "ad_id": _id(change.get("ad_id"))})
    return list(found.values())


# ---- what the Graph API answered -> the lead --------------------------------

def answers_of(graph_lead):
    """{field name: first value} of a Graph lead's `field_data`."""
    answers = {}
    for item in graph_lead.get("field_data") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        values = item.get("values")
        if isinstance(values, list):
            values = [v for v in values if v is not None and str(v).strip()]
            value = ", ".join(str(v).strip() for v in values) if values else None
        else:
            value = str(values).strip() if values is not None else None
        if value:
            answers.setdefault(item["name"], value)
    return answers


def lead_fields(graph_lead):
    """The lead's fields from a Graph lead: (fields, other answers).

    `full_name`, else `first_name` + `last_name`, else the email, is the name;
    texts are cut to their column sizes. Raises UnusableSubmission when there
    is no valid email (the contract requires one, and it is how a person is
    recognised again)."""
    if not isinstance(graph_lead, dict):
        raise UnusableSubmission("the Graph API answered %r, not a lead" % type(graph_lead).__name__)
    answers = answers_of(graph_lead)
    email = (answers.get("email") or "").strip().lower()
    if not email or len(email) > EMAIL_MAX or not handlers.valid_email(email):
        raise UnusableSubmission("the submission has no valid email (%r)" % answers.get("email"))
    name = answers.get("full_name") or " ".join(
        part for part in (answers.get("first_name"), answers.get("last_name")) if part) or email
    fields = {"name": name[:200], "email": email, "source": SOURCE}
    for key, target in MAPPED.items():
        if target and answers.get(key):
            fields[target[0]] = answers[key][:target[1]]
    others = {k: v for k, v in answers.items() if k not in MAPPED}
    return fields, others


def submitted_at(graph_lead, now):
    """When the person submitted the form (Meta's `created_time`), or now
    when it is missing, unreadable or in the future."""
    try:
        stamp = parse_timestamp(graph_lead.get("created_time"))
    except (TypeError, ValueError, OverflowError, AttributeError):
        return now
    return stamp if stamp <= now else now


def _note(submission, graph_lead, others, matched):
    ids = [("form", graph_lead.get("form_id") or submission.form_id),
           ("ad", graph_lead.get("ad_id") or submission.ad_id),
           ("campaign", graph_lead.get("campaign_id")),
           ("lead-gen submission", submission.leadgen_id)]
    lines = ["Submitted a Facebook lead form (%s)." % ", ".join(
        "%s %s" % (label, value) for label, value in ids if value)]
    if matched:
        lines.append("The email already belonged to this lead, so no new lead was made.")
    if others:
        lines.append("Other answers:")
        lines.extend("- %s: %s" % (k, v) for k, v in others.items())
    return "\n".join(lines)[:NOTE_MAX]


# ---- commands ---------------------------------------------------------------

def record_submissions(tx, delivery, correlation_id=None):
    """Keep each `leadgen` change of a delivery as a pending submission, once
    per leadgen id, with the delivery's correlation id. Returns the ids that
    are new."""
    rows = submissions_of(delivery)
    if not rows:
        return []
    now = utcnow()
    inserted = tx.session.execute(
        pg_insert(LeadAdSubmission)
        .values([dict(row, received_at=now, status="pending", attempts=0, next_attempt_at=now,
                      updated_at=now, correlation_id=correlation_id) for row in rows])
        .on_conflict_do_nothing(index_elements=["leadgen_id"])
        .returning(LeadAdSubmission.leadgen_id)).scalars().all()
    tx.commit()
    return sorted(inserted, key=[r["leadgen_id"] for r in rows].index)


def _due_and_unclaimed(now):
    """Pending, its next attempt come, and no live claim on it."""
    return (LeadAdSubmission.status == "pending", LeadAdSubmission.next_attempt_at <= now,
            sa.or_(LeadAdSubmission.claimed_until.is_(None), LeadAdSubmission.claimed_until < now))


def claim(tx, leadgen_id, policy):
    """Take a pending, due, unclaimed submission for one fetch (a lease of
    `policy.lease` s, so a process that dies lets it go). Returns the attempt
    (`number`, and the `correlation_id` of the delivery that brought it), or
    None when another instance has it or it is not due."""
    now = utcnow()
    attempt = tx.session.execute(
        sa.update(LeadAdSubmission)
        .where(LeadAdSubmission.leadgen_id == leadgen_id, *_due_and_unclaimed(now))
        .values(claimed_until=now + dt.timedelta(seconds=policy.lease),
                attempts=LeadAdSubmission.attempts + 1, updated_at=now)
        .returning(LeadAdSubmission.attempts.label("number"),
                   LeadAdSubmission.correlation_id)).first()
    tx.commit()
    return attempt


def due(tx, limit=20):
    """Leadgen ids of pending submissions whose next attempt has come."""
    now = utcnow()
    return tx.session.execute(
        sa.select(LeadAdSubmission.leadgen_id)
        .where(*_due_and_unclaimed(now))
        .order_by(LeadAdSubmission.next_attempt_at).limit(limit)).scalars().all()


def record_failure(tx, leadgen_id, error, permanent, policy, graph_lead=None):
    """A fetch (or the mapping) failed: schedule the next attempt, or mark the
    submission failed when the failure is permanent or attempts are spent.
    Returns the new status."""
    row = tx.session.get(LeadAdSubmission, leadgen_id, with_for_update=True)
    if row is None or row.status != "pending":
        return row.status if row else None
    now = utcnow()
    row.last_error = str(error)[:2000]
    row.claimed_until = None
    row.updated_at = now
    if graph_lead is not None:
        row.graph_lead = graph_lead
    if permanent or row.attempts >= policy.max_attempts:
        row.status = "failed"
        log.error("lead ad %s failed after %d attempt(s): %s", leadgen_id, row.attempts, error,
                  extra={"leadgen_id": leadgen_id})
    else:
        delay = policy.delay(row.attempts)
        row.next_attempt_at = now + dt.timedelta(seconds=delay)
        log.warning("lead ad %s: attempt %d failed (%s); next in %.1f s", leadgen_id,
                    row.attempts, error, delay, extra={"leadgen_id": leadgen_id})
    tx.commit()
    return row.status


def _locked_lead(tx, condition):
    """The lead matching `condition`, locked for this transaction, or None."""
    return tx.session.execute(sa.select(Lead).where(condition).with_for_update()
                              ).scalar_one_or_none()


def complete(tx, leadgen_id, graph_lead):
    """Make the lead of a fetched submission, or note the submission on the
    lead that already has its email; mark the submission done, all in one
    transaction. Returns "created", "matched", or None when the submission is
    no longer pending (another instance finished it). Raises
    UnusableSubmission when the answer cannot make a lead."""
    row = tx.session.get(LeadAdSubmission, leadgen_id, with_for_update=True)
    if row is None or row.status != "pending":
        return None
    fields, others = lead_fields(graph_lead)
    now = utcnow()
    stamp = submitted_at(graph_lead, now)
    repo = LeadRepository(tx.session)
    lead = _locked_lead(tx, Lead.meta_leadgen_id == leadgen_id)
    outcome = "matched"
    if lead is None:
        lead = _locked_lead(tx, Lead.email == fields["email"])
    if lead is None:
        meta = {"meta_leadgen_id": leadgen_id,
                "meta_form_id": _id(graph_lead.get("form_id")) or row.form_id,
                "meta_ad_id": _id(graph_lead.get("ad_id")) or row.ad_id,
                "meta_campaign_id": _id(graph_lead.get("campaign_id")),
                "meta_page_id": row.page_id}
        try:
            lead = handlers.add_lead(tx, fields, created_at=stamp, extra=meta, announce=False)
            outcome = "created"
        except DuplicateEmail:
            # Another submission (or a person) made a lead with this email
            # since we looked: note this one on it instead.
            lead = _locked_lead(tx, Lead.email == fields["email"])
        except InvalidLead as exc:
            raise UnusableSubmission(str(exc)) from exc
    before = lead_to_dict(lead)
    added = repo.add_activity_once(dict(
        id=uuid.uuid4(), lead_id=lead.id, type="note_created",
        title="Facebook lead form submitted",
        description=_note(row, graph_lead, others, matched=outcome == "matched"),
        timestamp=stamp, created_at=now, reference="meta-leadgen:%s" % leadgen_id))
    if added and (lead.last_interaction_at is None or stamp > lead.last_interaction_at):
        lead.last_interaction_at = stamp
    if outcome == "matched" and added:
        lead.updated_at = now
    tx.session.flush()
    after = lead_to_dict(lead)
    if outcome == "created":
        tx.emit("lead_created", {"lead": after})
    else:
        changes = {key: [before[key], after[key]] for key in after
                   if before[key] != after[key] and key != "updatedAt"}
        if changes:
            tx.emit("lead_updated", {"lead": after, "changes": changes})
    row.status = "done"
    row.outcome = outcome
    row.lead_id = lead.id
    row.graph_lead = graph_lead
    row.claimed_until = None
    row.last_error = None
    row.updated_at = now
    tx.commit()
    return outcome


def list_submissions(tx, status=None, limit=100, offset=0):
    """Submissions, newest first; `status` one of pending, done, failed."""
    query = sa.select(LeadAdSubmission)
    count = sa.select(sa.func.count()).select_from(LeadAdSubmission)
    if status is not None:
        if status not in ("pending", "done", "failed"):
            raise InvalidLead.for_field("status", "must be pending, done or failed")
        query = query.where(LeadAdSubmission.status == status)
        count = count.where(LeadAdSubmission.status == status)
    rows = tx.session.execute(query.order_by(LeadAdSubmission.received_at.desc(),
                                             LeadAdSubmission.leadgen_id)
                              .limit(limit).offset(offset)).scalars().all()
    return {"items": [submission_to_dict(r) for r in rows],
            "total": tx.session.execute(count).scalar()}


def retry(tx, leadgen_ids=None):
    """Make failed submissions pending again, due now, with fresh attempts
    (all failed ones when `leadgen_ids` is None). Returns their ids."""
    now = utcnow()
    query = sa.update(LeadAdSubmission).where(LeadAdSubmission.status == "failed")
    if leadgen_ids is not None:
        query = query.where(LeadAdSubmission.leadgen_id.in_([str(i) for i in leadgen_ids]))
    ids = tx.session.execute(
        query.values(status="pending", attempts=0, next_attempt_at=now, claimed_until=None,
                     updated_at=now)
        .returning(LeadAdSubmission.leadgen_id)).scalars().all()
    tx.commit()
    return sorted(ids)
