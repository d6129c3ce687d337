"""The memory benchmark's service baseline: a nameko service with one RPC
method and nothing else, run with a bare `nameko run`, so a service's RSS
can be read against what nameko + eventlet take by themselves.

    nameko run --config <AMQP_URI and max_workers> hello_service
"""
from nameko.rpc import rpc


class HelloService:
    name = "bench_hello"

    @rpc
    def ping(self):
        return "pong"
