"""How the leads service writes its data on the wire (RPC results and events).

These dicts are the contract's JSON (camelCase); ORM objects never leave.
"""
from crm_common.timefmt import UTC, iso_timestamp


def lead_to_dict(lead):
    last = lead.last_interaction_at
    return {
        "id": str(lead.id),
        "name": lead.name,
        "email": lead.email,
        "phone": lead.phone,
        "company": lead.company,
        "jobTitle": lead.job_title,
        "status": lead.status,
        "source": lead.source,
        "score": lead.score,
        "value": float(lead.value or 0),
        "ownerId": lead.owner_id,
        "createdAt": iso_timestamp(lead.created_at),
        "updatedAt": iso_timestamp(lead.updated_at),
        "lastInteraction": last.astimezone(UTC).date().isoformat() if last else None,
        "lastInteractionAt": iso_timestamp(last),
        "closedAt": iso_timestamp(lead.closed_at),
        "metaLeadAd": {"leadgenId": lead.meta_leadgen_id, "formId": lead.meta_form_id,
                       "adId": lead.meta_ad_id, "campaignId": lead.meta_campaign_id,
                       "pageId": lead.meta_page_id} if lead.meta_leadgen_id else None,
    }


def activity_to_dict(activity):
    return {
        "id": str(activity.id),
        "type": activity.type,
        "title": activity.title,
        "description": activity.description,
        "timestamp": iso_timestamp(activity.timestamp),
    }


def submission_to_dict(row):
    return {
        "leadgenId": row.leadgen_id,
        "pageId": row.page_id,
        "formId": row.form_id,
        "adId": row.ad_id,
        "receivedAt": iso_timestamp(row.received_at),
        "status": row.status,
        "attempts": row.attempts,
        "nextAttemptAt": iso_timestamp(row.next_attempt_at) if row.status == "pending" else None,
        "lastError": row.last_error,
        "leadId": str(row.lead_id) if row.lead_id else None,
        "outcome": row.outcome,
        "updatedAt": iso_timestamp(row.updated_at),
    }
