"""Domain errors that cross the RPC boundary.

nameko serializes a raised exception as its dotted path and its args; the
gateway maps those paths to HTTP statuses in one table (gateway/errors.py).
Each error carries one dict argument, so its details survive serialization.
"""


class DomainError(Exception):
    default_description = "The request could not be completed."

    def __init__(self, details=None):
        if isinstance(details, str):
            details = {"description": details}
        details = dict(details or {})
        details.setdefault("description", self.default_description)
        super().__init__(details)

    @property
    def details(self):
        return self.args[0]

    def __str__(self):
        return self.details["description"]


class NotFound(DomainError):
    default_description = "No such resource."


class Conflict(DomainError):
    default_description = "The resource conflicts with an existing one."


class ValidationFailed(DomainError):
    """Details carry `errors`: [{"field": ..., "message": ...}]."""
    default_description = "The data is not valid."

    @classmethod
    def for_field(cls, field, message):
        return cls({"description": "%s: %s" % (field, message),
                    "errors": [{"field": field, "message": message}]})

    @classmethod
    def check_known_fields(cls, data, allowed):
        """Raise naming every key of `data` that is not in `allowed`."""
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise cls({"description": "Unknown field(s): %s" % ", ".join(unknown),
                       "errors": [{"field": f, "message": "unknown field"} for f in unknown]})


class Unavailable(DomainError):
    default_description = "A dependency is unavailable; try again shortly."
