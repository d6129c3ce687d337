"""How the tasks service writes its data on the wire (RPC results and events).

These dicts are the contract's JSON (camelCase); ORM objects never leave.
"""
from crm_common.timefmt import iso_date, iso_timestamp


def task_to_dict(task):
    return {
        "id": str(task.id),
        "title": task.title,
        "description": task.description,
        # Returned in the kind it was sent: "YYYY-MM-DD", or a UTC timestamp.
        "dueDate": iso_date(task.due_date) if task.due_date else iso_timestamp(task.due_at),
        "priority": task.priority,
        "completed": task.completed,
        "completedAt": iso_timestamp(task.completed_at),
        "relatedToType": task.related_to_type,
        "relatedToId": str(task.related_to_id) if task.related_to_id else None,
        "createdAt": iso_timestamp(task.created_at),
        "updatedAt": iso_timestamp(task.updated_at),
    }
