"""Calling another service from inside a service, with a deadline.

nameko 2.14's RpcProxy waits for a reply forever: a target whose queue exists
but has no consumer (its process is down) would hang the worker. `RpcClient`
gives every call a timeout (and the request the same TTL, so a call nobody
took in time is never run); no answer in time, or no such service, is
`Unavailable`, which the gateway answers with a 503.
"""
import eventlet
from nameko.exceptions import RemoteError, UnknownService
from nameko.rpc import RpcProxy, ServiceProxy

from crm_common.errors import Unavailable

DEFAULT_TIMEOUT = 5.0


class _TimedMethod:
    def __init__(self, method_proxy, service, timeout):
        self._method = method_proxy
        self._service = service
        self._timeout = timeout

    def __call__(self, *args, **kwargs):
        try:
            reply = self._method.call_async(*args, **kwargs)
        except UnknownService:
            raise Unavailable("The %s service is not running." % self._service)
        try:
            with eventlet.Timeout(self._timeout):
                return reply.result()
        except eventlet.Timeout:
            raise Unavailable("The %s service did not answer in time." % self._service)


class _TimedServiceProxy(ServiceProxy):
    def __init__(self, worker_ctx, service_name, reply_listener, timeout, **options):
        super().__init__(worker_ctx, service_name, reply_listener, **options)
        self._timeout = timeout

    def __getattr__(self, name):
        return _TimedMethod(super().__getattr__(name), self.service_name, self._timeout)


class RpcClient(RpcProxy):
    """`RpcProxy` with a deadline: `RpcClient("contacts", timeout=5)`.

    A remote error still raises nameko's `RemoteError` (its `exc_type` names
    the remote class); callers translate the ones they expect.
    """

    def __init__(self, target_service, timeout=DEFAULT_TIMEOUT, **options):
        options.setdefault("expiration", timeout)
        super().__init__(target_service, **options)
        self.timeout = timeout

    def get_dependency(self, worker_ctx):
        return _TimedServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener,
                                  self.timeout, **self.options)


__all__ = ["RpcClient", "RemoteError", "Unavailable"]
