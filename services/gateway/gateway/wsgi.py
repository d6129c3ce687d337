"""gunicorn's entry: `gunicorn -c gunicorn.conf.py gateway.wsgi:app`.

Each worker process builds its own RPC client (one reply queue per process),
key-store pool and lead stream hub (one event queue per process); their
consumer threads start on first use, after fork. gunicorn.conf.py reaches
`streams` to end the open event streams on SIGTERM.
"""
from crm_common.config import Settings
from gateway.app import create_app
from gateway.keys import KeyStore
from gateway.rpc import RpcClient
from gateway.streams import LeadStreamHub

settings = Settings.from_env()
client = RpcClient(settings.amqp_uri, timeout=settings.rpc_timeout)
keys = KeyStore.open(settings, migrate=False)
streams = LeadStreamHub(settings.amqp_uri)
app = create_app(settings, client, keys, streams)
