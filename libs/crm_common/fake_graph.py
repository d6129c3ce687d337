"""A small fake of Meta's Graph API over real HTTP on loopback, for tests of
the services that read Meta (campaigns' sync, leads' lead-ad intake): `data` +
`paging.next` pages, lead-gen submissions by id, error bodies with a `code`, a
token checked from the Bearer header or `access_token`. `fail_next` answers
the next requests with the given (status, body) pairs; `delay` slows every
answer (seconds); `outage(seconds)` answers every request with a transient
503 until that time has passed (a Graph API that is briefly down)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse


class FakeGraph:
    def __init__(self, token="tok", account="act_123", page_size=2):
        self.token = token
        self.account = account
        self.page_size = page_size
        self.campaigns = {}
        self.insights = []
        self.leads = {}               # leadgen id -> Graph lead object
        self.delay = 0.0
        self.fail_next = []           # (status, body) answered one per request
        self.outage_until = 0.0       # time.monotonic() before which every answer is a 503
        self.outage_answers = 0       # how many requests the outage answered
        self.requests = []            # (path, {param: value})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/v21.0" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    OUTAGE = (503, {"error": {"message": "Service temporarily unavailable",
                              "type": "OAuthException", "code": 2, "is_transient": True}})

    def outage(self, seconds):
        """Answer every request with a transient 503 for the next `seconds`."""
        self.outage_until = time.monotonic() + seconds

    def seen(self, suffix):
        return [q for p, q in self.requests if p.endswith(suffix)]

    def _page(self, rows, query, path):
        after = int(query.get("after", "0"))
        body = {"data": rows[after:after + self.page_size], "paging": {}}
        if after + self.page_size < len(rows):
            body["paging"]["next"] = "http://127.0.0.1:%d%s?%s" % (
                self.port, path, urlencode(dict(query, after=after + self.page_size)))
        return body

    def answer(self, path, query, bearer):
        self.requests.append((path, query))
        if self.delay:
            time.sleep(self.delay)
        if time.monotonic() < self.outage_until:
            self.outage_answers += 1
            return self.OUTAGE
        if self.fail_next:
            return self.fail_next.pop(0)
        if (bearer or query.get("access_token")) != self.token:
            return 400, {"error": {"message": "Invalid OAuth access token.",
                                   "type": "OAuthException", "code": 190}}
        if path == "/v21.0/%s/campaigns" % self.account:
            return 200, self._page(list(self.campaigns.values()), query, path)
        if path == "/v21.0/%s/insights" % self.account:
            return 200, self._page(list(self.insights), query, path)
        lead_id = path[len("/v21.0/"):]
        if path.startswith("/v21.0/") and lead_id in self.leads:
            return 200, self.leads[lead_id]
        return 404, {"error": {"message": "Unsupported get request.", "code": 100}}

    def _handler(self):
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                auth = self.headers.get("Authorization", "")
                status, body = graph.answer(url.path, query,
                                            auth[7:] if auth.startswith("Bearer ") else None)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler
