"""What the leads service does: each function is one command in one
transaction (`tx`, a crm_common UnitOfWork), raising the events it causes."""
import re
import uuid
from decimal import Decimal

import sqlalchemy as sa

from crm_common.timefmt import parse_timestamp, utcnow
from leads import scoring
from leads.exceptions import DuplicateEmail, InvalidLead, LeadNotFound
from leads.models import ACTIVITY_TYPES, STATUSES, Activity, Lead
from leads.repository import DEFAULT_SORT, SORT_COLUMNS, LeadRepository, parse_id
from leads.schemas import activity_to_dict, lead_to_dict

WRITABLE = ("name", "email", "phone", "company", "job_title", "status", "source", "score",
            "value", "owner_id")
# Which constraint guards which field, to name the field in a 422.
CONSTRAINT_FIELDS = {"lead_status_known": "status", "lead_score_range": "score",
                     "lead_value_not_negative": "value", "activity_type_known": "type"}


def _normalise(data):
    data = dict(data)
    if "email" in data and data["email"] is not None:
        data["email"] = data["email"].strip().lower()
    if data.get("status") is not None and data["status"] not in STATUSES:
        raise InvalidLead.for_field("status", "must be one of %s" % ", ".join(STATUSES))
    if data.get("value") is not None:
        data["value"] = Decimal(str(data["value"]))
    return data


def _flush(tx, repo_call, email=None):
    """Run a repository write, turning constraint violations into domain errors."""
    try:
        with tx.session.begin_nested():
            return repo_call()
    except sa.exc.IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None) or ""
        if "email" in constraint and email is not None:
            existing = LeadRepository(tx.session).id_by_email(email)
            raise DuplicateEmail({"description": "A lead with email %s already exists." % email,
                                  "existingId": str(existing) if existing else None,
                                  "errors": [{"field": "email", "message": "already used by lead %s"
                                              % existing}]})
        field = CONSTRAINT_FIELDS.get(constraint)
        if field:
            raise InvalidLead.for_field(field, "is not an allowed value")
        raise InvalidLead("The lead breaks a data rule: %s" % (constraint or "constraint")) from exc
    except sa.exc.DataError as exc:
        raise InvalidLead("A field is too long or of the wrong kind.") from exc


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def valid_email(email):
    """The gateway's email rule, for leads that do not come through it."""
    return bool(EMAIL.match(email))


def add_lead(tx, data, created_at=None, extra=None, announce=True):
    """Validate and add a lead (not committed); emit lead_created unless
    `announce` is False (the caller emits it once the lead is complete).
    `extra` sets columns no client writes (the Meta ids of a lead ad)."""
    InvalidLead.check_known_fields(data, WRITABLE)
    data = _normalise({k: v for k, v in data.items() if v is not None or k in
                       ("phone", "company", "job_title", "owner_id")})
    if not data.get("name") or not data.get("email"):
        missing = [f for f in ("name", "email") if not data.get(f)]
        raise InvalidLead({"description": "Missing required field(s).",
                           "errors": [{"field": f, "message": "required"} for f in missing]})
    now = utcnow()
    data.setdefault("status", "new")
    data.setdefault("source", "Manual")
    data.setdefault("value", Decimal("0"))
    if data.get("score") is None:
        data["score"] = scoring.initial_score(data["email"], data.get("company"),
                                              data.get("job_title"), data.get("phone"),
                                              data.get("source"), data.get("value"))
    lead = Lead(created_at=created_at or now, updated_at=now,
                closed_at=now if data["status"] == "closed" else None, **data, **(extra or {}))
    repo = LeadRepository(tx.session)
    _flush(tx, lambda: repo.add(lead), email=data["email"])
    if announce:
        tx.emit("lead_created", {"lead": lead_to_dict(lead)})
    return lead


def create_lead(tx, data):
    lead = add_lead(tx, data)
    tx.commit()
    return lead_to_dict(lead)


def get_lead(tx, lead_id):
    lead = LeadRepository(tx.session).row(lead_id)
    if lead is None:
        raise LeadNotFound()
    return lead_to_dict(lead)


def list_leads(tx, query):
    query = dict(query or {})
    sort = query.pop("sort", None) or DEFAULT_SORT
    if sort.lstrip("-") not in SORT_COLUMNS:
        raise InvalidLead.for_field("sort", "unknown sort field")
    InvalidLead.check_known_fields(
        query, ("status", "search", "source", "owner_id", "min_score", "limit", "offset"))
    rows, total = LeadRepository(tx.session).search(sort=sort, **query)
    return {"items": [lead_to_dict(lead) for lead in rows], "total": total}


EXPORT_MAX = 5000


def export_leads(tx, after_id=None, limit=1000):
    """One page of every lead, in id order, for consumers that rebuild from
    the current data (analytics). Read-only. `next` is the id to pass as
    `after_id` for the following page; None when this page is the last."""
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        raise InvalidLead.for_field("limit", "must be an integer")
    if not 1 <= limit <= EXPORT_MAX:
        raise InvalidLead.for_field("limit", "must be between 1 and %d" % EXPORT_MAX)
    key = None
    if after_id is not None:
        key = parse_id(after_id)
        if key is None:
            raise InvalidLead.for_field("after_id", "must be a lead id")
    rows = LeadRepository(tx.session).export_page(key, limit)
    items = [lead_to_dict(lead) for lead in rows]
    return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}


def _status_activity(lead, old, new, now):
    return Activity(lead_id=lead.id, type="status_change",
                    title="Status changed from %s to %s" % (old, new),
                    description=None, timestamp=now, created_at=now)


def update_lead(tx, lead_id, changes):
    InvalidLead.check_known_fields(changes, WRITABLE)
    changes = _normalise(changes)
    for field in ("name", "email", "status", "source", "score", "value"):
        if field in changes and changes[field] is None:
            raise InvalidLead.for_field(field, "may not be null")
    repo = LeadRepository(tx.session)
    lead = repo.get(lead_id, for_update=True)
    if lead is None:
        raise LeadNotFound()
    before = lead_to_dict(lead)
    old_status = lead.status
    now = utcnow()

    def apply_changes():
        for field, value in changes.items():
            setattr(lead, field, value)
        lead.updated_at = now
        if lead.status != old_status:
            lead.closed_at = now if lead.status == "closed" else None
        tx.session.flush()

    # The changes are made inside the savepoint: begin_nested() first flushes
    # whatever is pending, outside it, where a duplicate email would break the
    # whole transaction instead of becoming a DuplicateEmail.
    _flush(tx, apply_changes, email=changes.get("email"))
    after = lead_to_dict(lead)
    diff = {key: [before[key], after[key]] for key in after
            if before[key] != after[key] and key != "updatedAt"}
    if not diff:
        return before              # nothing changed: no write, no event
    if lead.status != old_status:
        repo.add_activity(_status_activity(lead, old_status, lead.status, now))
        tx.emit("lead_status_changed", {"lead": after, "old_status": old_status,
                                        "new_status": lead.status})
    tx.emit("lead_updated", {"lead": after, "changes": diff})
    tx.commit()
    return after


def delete_lead(tx, lead_id):
    repo = LeadRepository(tx.session)
    lead = repo.get(lead_id, for_update=True)
    if lead is None:
        raise LeadNotFound()
    gone = lead_to_dict(lead)
    repo.delete(lead)
    tx.emit("lead_deleted", {"lead": gone})
    tx.commit()
    return gone


def list_activity(tx, lead_id, limit=100, offset=0):
    repo = LeadRepository(tx.session)
    lead = repo.get(lead_id)
    if lead is None:
        raise LeadNotFound()
    rows, total = repo.timeline(lead.id, limit=limit, offset=offset)
    return {"items": [activity_to_dict(a) for a in rows], "total": total}


def record_conversion(tx, lead_id, contact):
    """The lead's timeline notes its conversion into `contact`, once."""
    repo = LeadRepository(tx.session)
    lead = repo.get(lead_id, for_update=True)
    if lead is None:
        return False
    now = utcnow()
    before = lead_to_dict(lead)
    recorded = repo.add_activity_once(dict(
        id=uuid.uuid4(), lead_id=lead.id, type="note_created", title="Converted to a contact",
        description="Contact %s (%s) was created from this lead." % (contact["name"], contact["id"]),
        timestamp=now, created_at=now, reference="contact:%s" % contact["id"]))
    if not recorded:
        return False
    lead.last_interaction_at = now
    lead.updated_at = now
    tx.session.flush()
    after = lead_to_dict(lead)
    tx.emit("lead_updated", {"lead": after, "changes": {
        key: [before[key], after[key]] for key in ("lastInteraction", "lastInteractionAt")
        if before[key] != after[key]}})
    tx.commit()
    return True


def log_activity(tx, lead_id, data):
    InvalidLead.check_known_fields(data, ("type", "title", "description", "timestamp"))
    kind = data.get("type")
    if kind not in ACTIVITY_TYPES:
        raise InvalidLead.for_field("type", "must be one of %s" % ", ".join(
            t for t in ACTIVITY_TYPES if t != "status_change"))
    if kind == "status_change":
        raise InvalidLead.for_field("type", "status_change is written by the system")
    if not data.get("title"):
        raise InvalidLead.for_field("title", "required")
    repo = LeadRepository(tx.session)
    lead = repo.get(lead_id, for_update=True)
    if lead is None:
        raise LeadNotFound()
    now = utcnow()
    try:
        stamp = parse_timestamp(data["timestamp"]) if data.get("timestamp") else now
    except (ValueError, OverflowError):
        raise InvalidLead.for_field("timestamp", "not an ISO 8601 timestamp within years 1-9999")
    before = lead_to_dict(lead)
    activity = Activity(lead_id=lead.id, type=kind, title=data["title"],
                        description=data.get("description"), timestamp=stamp, created_at=now)
    _flush(tx, lambda: repo.add_activity(activity))
    if lead.last_interaction_at is None or stamp > lead.last_interaction_at:
        lead.last_interaction_at = stamp
    lead.score = scoring.after_activity(lead.score, kind)
    lead.updated_at = now
    tx.session.flush()
    after = lead_to_dict(lead)
    diff = {key: [before[key], after[key]] for key in after
            if before[key] != after[key] and key != "updatedAt"}
    if diff:
        tx.emit("lead_updated", {"lead": after, "changes": diff})
    tx.commit()
    return activity_to_dict(activity)
