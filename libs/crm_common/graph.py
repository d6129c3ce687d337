"""A small client of Meta's Graph API, on `requests` (mechanism shared by the
services that read Meta: campaigns' ad account sync, leads' lead-ad intake).

The official facebook-business SDK is not used. The client:
- pins the API version through its base URL (`META_GRAPH_URL`, default
  `https://graph.facebook.com/v21.0`);
- sends the token in an `Authorization: Bearer` header (never in URLs or logs);
- follows `paging.next` to the last page;
- classifies failures: `GraphThrottled` (rate limits: codes 4, 17, 32, 613,
  80000-80014, HTTP 429), `GraphTransient` (codes 1, 2, `is_transient`, HTTP 5xx,
  timeouts, connection errors) and `GraphRefused` (everything else, e.g. 190,
  an invalid or expired token): the first two are retried with exponential
  backoff up to `max_attempts` (1: the caller schedules retries itself), a
  refusal is raised at once.

`sleep` is injectable so tests do not wait.
"""
import logging
import time

import requests

log = logging.getLogger(__name__)

DEFAULT_GRAPH_URL = "https://graph.facebook.com/v21.0"
THROTTLE_CODES = frozenset({4, 17, 32, 613} | set(range(80000, 80015)))
TRANSIENT_CODES = frozenset({1, 2})


class GraphError(Exception):
    """A failed Graph call: Meta's `message`, its `code` and the HTTP status."""

    def __init__(self, message, code=None, status=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self):
        return "%s (code %s)" % (self.message, self.code) if self.code is not None else self.message


class GraphThrottled(GraphError):
    """A rate limit: retry later."""


class GraphTransient(GraphError):
    """A passing failure (Meta's 1/2, a 5xx, a timeout): retry."""


class GraphRefused(GraphError):
    """A permanent refusal (bad token, missing permission, bad request)."""


def classify(status, body):
    """The GraphError a response with `status` and JSON `body` (or None) means."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if status == 429:
            return GraphThrottled("Too many requests", None, status)
        if status >= 500:
            return GraphTransient("Graph API answered HTTP %d" % status, None, status)
        return GraphRefused("Graph API answered HTTP %d" % status, None, status)
    message = str(error.get("message") or "Graph API error")
    try:
        code = int(error.get("code"))
    except (TypeError, ValueError):
        code = None
    if code in THROTTLE_CODES or status == 429:
        return GraphThrottled(message, code, status)
    if code in TRANSIENT_CODES or error.get("is_transient") or status >= 500:
        return GraphTransient(message, code, status)
    return GraphRefused(message, code, status)


class GraphClient:
    def __init__(self, base_url, token, timeout=(5, 60), max_attempts=5, backoff=2.0,
                 throttle_backoff=30.0, max_backoff=300.0, sleep=time.sleep, max_pages=10000,
                 session=None):
        if not token:
            raise GraphRefused("META_ACCESS_TOKEN is not set")
        self.base_url = (base_url or DEFAULT_GRAPH_URL).rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.throttle_backoff = throttle_backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.max_pages = max_pages
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = "Bearer %s" % token

    def close(self):
        self.session.close()

    # ---- one request, with retries ------------------------------------------

    def _once(self, url, params):
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise GraphTransient("Graph API unreachable: %s" % exc.__class__.__name__) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict) and "error" not in body:
            return body
        if response.status_code == 200 and body is None:
            raise GraphTransient("Graph API answered a body that is not JSON", None, 200)
        raise classify(response.status_code, body)

    def _delay(self, exc, attempt):
        base = self.throttle_backoff if isinstance(exc, GraphThrottled) else self.backoff
        return min(self.max_backoff, base * (2 ** (attempt - 1)))

    def get(self, url, params=None):
        """GET `url` (absolute, or a path under the base URL) as JSON."""
        if not url.startswith(("http://", "https://")):
            url = "%s/%s" % (self.base_url, url.lstrip("/"))
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(url, params)
            except (GraphThrottled, GraphTransient) as exc:
                if attempt >= self.max_attempts:
                    log.warning("graph call failed after %d attempts: %s", attempt, exc)
                    raise
                delay = self._delay(exc, attempt)
                log.info("graph call failed (%s), retry %d in %.1f s", exc, attempt, delay)
                self.sleep(delay)

    def pages(self, path, params=None):
        """Every row of `data`, page after page, following `paging.next`."""
        url, pages = path, 0
        while url:
            body = self.get(url, params)
            pages += 1
            for row in body.get("data") or []:
                yield row
            url = ((body.get("paging") or {}).get("next"))
            params = None           # `next` carries the whole query
            if pages >= self.max_pages and url:
                raise GraphTransient("Graph API paging did not end after %d pages" % pages)
