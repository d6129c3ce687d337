"""The RPC entrypoint every service uses: nameko's `rpc`, with a cheaper reply.

nameko 2.14's responder serializes each result twice (a trial `dumps`, then
the publish) and publishes the reply with publisher confirms, one broker round
trip per call. A reply is a transient message to the caller's exclusive reply
queue: a confirm only says the broker took it, which the caller learns anyway
from the reply itself (or, when it is lost with the connection, from its
timeout, exactly as when a confirmed reply's queue vanishes). So here the
result is serialized once, that body is what goes out, and the reply is
published without a confirm. The request is still acked only after its reply
was written, as nameko does.

Every entrypoint of a service must come from here or from nameko, not both:
the two consumers would each take the service's RPC queue.
"""
import sys

import kombu.serialization
from kombu import Connection
from kombu.pools import producers
from nameko.constants import (AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER,
                              DEFAULT_TRANSPORT_OPTIONS, LOGIN_METHOD_CONFIG_KEY,
                              SERIALIZER_CONFIG_KEY)
from nameko.exceptions import UnserializableValueError, serialize
from nameko.rpc import Rpc as NamekoRpc, RpcConsumer as NamekoRpcConsumer, get_rpc_exchange


def reply_body(result, exc_info, serializer):
    """(content_type, content_encoding, data, result, exc_info) of the reply:
    `{"result", "error"}` serialized once; a result that cannot be serialized
    becomes nameko's UnserializableValueError, as nameko does."""
    error = serialize(exc_info[1]) if exc_info is not None else None
    try:
        content_type, encoding, data = kombu.serialization.dumps(
            {"result": result, "error": error}, serializer)
    except Exception:
        exc_info = sys.exc_info()
        error = serialize(UnserializableValueError(result))
        result = None
        content_type, encoding, data = kombu.serialization.dumps(
            {"result": None, "error": error}, serializer)
    return content_type, encoding, data, result, exc_info


class RpcConsumer(NamekoRpcConsumer):
    def setup(self):
        super().setup()
        config = self.container.config
        self.exchange = get_rpc_exchange(config)
        self.default_serializer = config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER)
        # kombu's shared pool of producers for these connection settings,
        # looked up once rather than per reply (as nameko's get_producer does)
        self.producers = producers[Connection(
            config[AMQP_URI_CONFIG_KEY], ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
            transport_options=dict(DEFAULT_TRANSPORT_OPTIONS, confirm_publish=False))]

    def handle_result(self, message, result, exc_info):
        # answer in the request's own encoding, as nameko does
        serializer = kombu.serialization.registry.type_to_name.get(
            message.properties.get("content_type"), self.default_serializer)
        content_type, encoding, data, result, exc_info = reply_body(result, exc_info, serializer)
        with self.producers.acquire(block=True) as producer:
            producer.publish(data, content_type=content_type, content_encoding=encoding,
                             exchange=self.exchange, routing_key=message.properties["reply_to"],
                             correlation_id=message.properties.get("correlation_id"),
                             retry=True, retry_policy={"max_retries": 3})
        self.queue_consumer.ack_message(message)
        return result, exc_info


class Rpc(NamekoRpc):
    rpc_consumer = RpcConsumer()


rpc = Rpc.decorator
