"""What the contacts service does: each function is one command in one
transaction (`tx`, a crm_common UnitOfWork), raising the events it causes."""
import uuid

import sqlalchemy as sa

from crm_common.ids import parse_id
from crm_common.timefmt import parse_timestamp, utcnow
from contacts.exceptions import ContactNotFound, InvalidContact
from contacts.models import LOGGABLE_TYPES, Contact, HistoryItem
from contacts.repository import DEFAULT_SORT, SORT_COLUMNS, ContactRepository
from contacts.schemas import contact_to_dict, history_to_dict

WRITABLE = ("name", "email", "role", "company", "phone", "notes")
REQUIRED = ("name", "email")
# A lead's fields (contract Lead JSON) that a conversion copies, by contact field.
FROM_LEAD = {"name": "name", "email": "email", "phone": "phone", "company": "company",
             "role": "jobTitle"}


def _check_required(data):
    missing = [f for f in REQUIRED if not data.get(f)]
    if missing:
        raise InvalidContact({"description": "Missing required field(s): %s" % ", ".join(missing),
                              "errors": [{"field": f, "message": "required"} for f in missing]})


def _clean_text(data, table):
    """Check text fields against `table`'s columns and lower-case the email.

    Together with the checks of each command, this leaves no write that the
    database's own rules could refuse: bad input is a 422 naming the field.
    """
    data = dict(data)
    for field, value in data.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidContact.for_field(field, "must be text")
        if "\x00" in value:
            raise InvalidContact.for_field(field, "must not contain NUL characters")
        limit = table.c[field].type.length
        if limit and len(value) > limit:
            raise InvalidContact.for_field(field, "at most %d characters" % limit)
    if data.get("email") is not None:
        data["email"] = data["email"].strip().lower()
    return data


def _diff(before, after):
    return {key: [before[key], after[key]] for key in after
            if before[key] != after[key] and key != "updatedAt"}


def create_contact(tx, data):
    InvalidContact.check_known_fields(data, WRITABLE)
    data = _clean_text(data, Contact.__table__)
    _check_required(data)
    now = utcnow()
    contact = Contact(created_at=now, updated_at=now, **data)
    ContactRepository(tx.session).add(contact)
    result = contact_to_dict(contact)
    tx.emit("contact_created", {"contact": result})
    tx.commit()
    return result


def get_contact(tx, contact_id):
    contact = ContactRepository(tx.session).get(contact_id)
    if contact is None:
        raise ContactNotFound()
    return contact_to_dict(contact)


def list_contacts(tx, query):
    query = dict(query or {})
    sort = query.pop("sort", None) or DEFAULT_SORT
    if sort.lstrip("-") not in SORT_COLUMNS:
        raise InvalidContact.for_field("sort", "unknown sort field")
    InvalidContact.check_known_fields(query, ("search", "company", "limit", "offset"))
    rows, total = ContactRepository(tx.session).search(sort=sort, **query)
    return {"items": [contact_to_dict(contact) for contact in rows], "total": total}


def update_contact(tx, contact_id, changes):
    InvalidContact.check_known_fields(changes, WRITABLE)
    changes = _clean_text(changes, Contact.__table__)
    for field in REQUIRED:
        if field in changes and not changes[field]:
            raise InvalidContact.for_field(field, "may not be empty or null")
    contact = ContactRepository(tx.session).get(contact_id, for_update=True)
    if contact is None:
        raise ContactNotFound()
    before = contact_to_dict(contact)
    for field, value in changes.items():
        setattr(contact, field, value)
    if not _diff(before, contact_to_dict(contact)):
        return before              # nothing changed: no write, no event
    contact.updated_at = utcnow()
    tx.session.flush()
    after = contact_to_dict(contact)
    tx.emit("contact_updated", {"contact": after, "changes": _diff(before, after)})
    tx.commit()
    return after


def delete_contact(tx, contact_id):
    repo = ContactRepository(tx.session)
    contact = repo.get(contact_id, for_update=True)
    if contact is None:
        raise ContactNotFound()
    gone = contact_to_dict(contact)
    repo.delete(contact)           # the history goes with it (ON DELETE CASCADE)
    tx.emit("contact_deleted", {"contact": gone})
    tx.commit()
    return gone


def list_history(tx, contact_id, limit=100, offset=0):
    repo = ContactRepository(tx.session)
    contact = repo.get(contact_id)
    if contact is None:
        raise ContactNotFound()
    rows, total = repo.history(contact.id, limit=limit, offset=offset)
    return {"items": [history_to_dict(item) for item in rows], "total": total}


def log_history(tx, contact_id, data):
    InvalidContact.check_known_fields(data, ("type", "title", "description", "timestamp"))
    kind = data.get("type")
    if kind == "status_change":
        raise InvalidContact.for_field("type", "contacts have no status to change")
    if kind not in LOGGABLE_TYPES:
        raise InvalidContact.for_field("type", "must be one of %s" % ", ".join(LOGGABLE_TYPES))
    text = _clean_text({"title": data.get("title"), "description": data.get("description")},
                       HistoryItem.__table__)
    if not text["title"]:
        raise InvalidContact.for_field("title", "required")
    now = utcnow()
    try:
        stamp = parse_timestamp(data["timestamp"]) if data.get("timestamp") else now
    except (ValueError, OverflowError, TypeError, AttributeError):
        raise InvalidContact.for_field("timestamp", "not an ISO 8601 timestamp within years 1-9999")
    repo = ContactRepository(tx.session)
    # Locked, so concurrent logs on one contact agree on the newest timestamp.
    contact = repo.get(contact_id, for_update=True)
    if contact is None:
        raise ContactNotFound()
    item = repo.add_history(HistoryItem(contact_id=contact.id, type=kind, timestamp=stamp,
                                        created_at=now, **text))
    if contact.last_contacted is None or stamp > contact.last_contacted:
        before = contact_to_dict(contact)
        contact.last_contacted = stamp
        contact.updated_at = now
        tx.session.flush()
        after = contact_to_dict(contact)
        tx.emit("contact_updated", {"contact": after, "changes": _diff(before, after)})
    tx.commit()
    return history_to_dict(item)


def create_from_lead(tx, lead):
    """The contact for a lead being converted (`lead`: the contract's Lead
    JSON). Returns {"contact", "created"}: the contact already linked to the
    lead; else the oldest unlinked contact with the lead's email, now linked
    (the contract's "links to, by email"); else a new contact made from the
    lead. However many calls race, one contact ends up linked to the lead,
    and every call returns it."""
    lead_id = parse_id(lead.get("id") if isinstance(lead, dict) else None)
    if lead_id is None:
        raise InvalidContact.for_field("id", "not a lead id")
    values = _clean_text({field: lead.get(key) for field, key in FROM_LEAD.items()},
                         Contact.__table__)
    _check_required(values)
    repo = ContactRepository(tx.session)
    contact = repo.by_lead(lead_id)
    if contact is not None:
        return {"contact": contact_to_dict(contact), "created": False}
    now = utcnow()
    contact = repo.unlinked_by_email(values["email"])
    if contact is not None:
        return _link(tx, repo, contact, lead_id, now)
    contact = repo.add_for_lead(dict(values, id=uuid.uuid4(), lead_id=lead_id, created_at=now,
                                     updated_at=now))
    if contact is None:            # a concurrent conversion of this lead made it
        return {"contact": contact_to_dict(repo.by_lead(lead_id)), "created": False}
    result = contact_to_dict(contact)
    tx.emit("contact_created", {"contact": result})
    tx.commit()
    return {"contact": result, "created": True}


def _link(tx, repo, contact, lead_id, now):
    before = contact_to_dict(contact)
    try:
        with tx.session.begin_nested():
            contact.lead_id = lead_id
            contact.updated_at = now
            tx.session.flush()
    except sa.exc.IntegrityError:
        # A concurrent conversion linked another contact to this lead first.
        return {"contact": contact_to_dict(repo.by_lead(lead_id)), "created": False}
    after = contact_to_dict(contact)
    tx.emit("contact_updated", {"contact": after, "changes": _diff(before, after)})
    tx.commit()
    return {"contact": after, "created": False}
