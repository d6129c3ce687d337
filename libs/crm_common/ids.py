"""What clients send into queries: UUID strings, search text."""
import uuid


def parse_id(value):
    """A UUID, or None when `value` is not one (so it can match no row)."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def like_pattern(text):
    """A case-insensitive substring pattern (ILIKE ... ESCAPE '\\') where the
    client's % and _ match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped + "%"
