"""The memory benchmark's gateway baseline: a hello-world Falcon app, run
under gunicorn with the gateway's worker settings, so the gateway's RSS can
be read against what gunicorn + Falcon take by themselves.

    PYTHONPATH=bench gunicorn -k gthread ... hello_app:app
"""
import falcon


class Hello:
    def on_get(self, req, resp):
        resp.media = {"hello": "world"}


app = falcon.App()
app.add_route("/", Hello())
