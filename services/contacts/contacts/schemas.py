"""How the contacts service writes its data on the wire (RPC results and events).

These dicts are the contract's JSON (camelCase); ORM objects never leave.
"""
from crm_common.timefmt import iso_timestamp


def contact_to_dict(contact):
    return {
        "id": str(contact.id),
        "name": contact.name,
        "email": contact.email,
        "role": contact.role,
        "company": contact.company,
        "phone": contact.phone,
        "notes": contact.notes,
        "leadId": str(contact.lead_id) if contact.lead_id else None,
        "lastContacted": iso_timestamp(contact.last_contacted),
        "createdAt": iso_timestamp(contact.created_at),
        "updatedAt": iso_timestamp(contact.updated_at),
    }


def history_to_dict(item):
    return {
        "id": str(item.id),
        "type": item.type,
        "title": item.title,
        "description": item.description,
        "timestamp": iso_timestamp(item.timestamp),
    }
