"""One JSON object per log line, for every process of the stack."""
import json
import logging
import time


class JsonFormatter(logging.Formatter):
    FIELDS = ("service", "request_id", "route", "status", "duration_ms")

    def format(self, record):
        expected = record.name == "nameko.containers" and str(record.msg).startswith("(expected)")
        if expected:
            # A business error (404/409/422) the service declared: a fact, not
            # a fault; nameko logs it as a warning with a traceback.
            record.levelname, record.exc_info, record.exc_text = "INFO", None, None
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + ".%03dZ" % record.msecs,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level="INFO"):
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
