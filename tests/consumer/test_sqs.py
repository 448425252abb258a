"""helper.consumer.sqs: the dead-letter queue's URL."""

from __future__ import annotations

from helper.consumer.sqs import dead_letter_url


def test_the_dead_letter_queue_url_is_the_source_queues_with_the_dlqs_name():
    assert dead_letter_url("https://sqs.eu-west-1.amazonaws.com/111122223333/hooks",
                           "arn:aws:sqs:eu-west-1:111122223333:hooks-dlq") == \
        "https://sqs.eu-west-1.amazonaws.com/111122223333/hooks-dlq"
