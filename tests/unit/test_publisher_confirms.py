"""The outbox relay's count of publisher confirms: a batch counts as confirmed
only when the broker acked every message of it, and never after a refusal."""
import socket
import time

import pytest

from crm_common.outbox import NotConfirmed, PublisherConfirms


def published(n):
    confirms = PublisherConfirms()
    confirms.published = n
    return confirms


def broker_sending(confirms, *frames):
    """A `drain_events` that delivers one scripted ack/nack per call, then
    times out (as py-amqp does when nothing arrives)."""
    frames = list(frames)

    def drain_events(timeout):
        if not frames:
            raise socket.timeout()
        kind, tag, multiple = frames.pop(0)
        (confirms.on_ack if kind == "ack" else confirms.on_nack)(tag, multiple)
    return drain_events


def test_an_ack_with_multiple_confirms_every_message_up_to_its_tag():
    confirms = published(500)
    confirms.on_ack(499, True)
    assert confirms.confirmed == 499
    confirms.on_ack(500, False)
    assert confirms.confirmed == 500


def test_single_acks_out_of_order_confirm_only_an_unbroken_run():
    confirms = published(5)
    for tag in (2, 3, 5):
        confirms.on_ack(tag, False)
    assert confirms.confirmed == 0
    confirms.on_ack(1, False)
    assert confirms.confirmed == 3
    confirms.on_ack(4, False)
    assert confirms.confirmed == 5


def test_a_multiple_ack_after_single_acks_keeps_the_later_ones():
    confirms = published(6)
    confirms.on_ack(5, False)
    confirms.on_ack(6, False)
    confirms.on_ack(3, True)
    assert confirms.confirmed == 3
    confirms.on_ack(4, False)
    assert confirms.confirmed == 6


def test_a_multiple_ack_closing_a_gap_confirms_the_single_acks_past_it():
    confirms = published(4)
    confirms.on_ack(3, False)
    confirms.on_ack(4, False)
    confirms.on_ack(2, True)
    assert confirms.confirmed == 4


def test_wait_returns_once_the_last_message_is_acked():
    confirms = published(300)
    confirms.wait(broker_sending(confirms, ("ack", 100, True), ("ack", 300, True)), timeout=5)
    assert confirms.confirmed == 300


def test_wait_fails_on_a_nack_even_when_the_rest_is_acked():
    confirms = published(3)
    drain = broker_sending(confirms, ("ack", 1, False), ("nack", 2, False), ("ack", 3, False))
    with pytest.raises(NotConfirmed, match="nacked message 2"):
        confirms.wait(drain, timeout=5)


def test_a_returned_message_fails_the_batch():
    confirms = published(1)
    confirms.on_return(Exception("NO_ROUTE"), "leads.events", "lead_created", None)
    confirms.on_ack(1, False)
    with pytest.raises(NotConfirmed, match="returned"):
        confirms.wait(broker_sending(confirms), timeout=5)


def test_wait_gives_up_when_confirms_stop_coming():
    confirms = published(10)
    with pytest.raises(NotConfirmed, match="2 messages not confirmed"):
        confirms.wait(broker_sending(confirms, ("ack", 8, True)), timeout=5)


def test_wait_is_bounded_by_its_timeout_while_the_broker_says_nothing_useful():
    confirms = published(2)

    def drain_events(timeout):        # frames keep coming, none of them an ack
        time.sleep(min(timeout, 0.02))

    started = time.monotonic()
    with pytest.raises(NotConfirmed):
        confirms.wait(drain_events, timeout=0.2)
    assert time.monotonic() - started < 1
