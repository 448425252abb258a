"""The SQS seam: the calls the consumer makes on its queue (and its dead-letter queue), nothing more."""

from __future__ import annotations

import json
from dataclasses import dataclass

from helper.aws.errors import AwsError, explain, translated
from helper.errors import HelperError

# SQS accepts at most 10 messages per receive and 20 s of long polling.
MAX_MESSAGES_PER_RECEIVE = 10
MAX_WAIT_S = 20


class QueueError(HelperError):
    """A queue call failed after botocore's own retries."""


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt_handle: str
    body: str
    # How often SQS has handed this message out: with the queue's maxReceiveCount this
    # tells us whether the next failure sends it to the dead-letter queue.
    receive_count: int
    sent_at_ms: int


@dataclass(frozen=True)
class Redrive:
    max_receive_count: int
    dead_letter_url: str


def dead_letter_url(queue_url: str, target_arn: str) -> str:
    """The dead-letter queue's URL, from the source queue's URL and the DLQ's ARN.

    SQS requires a dead-letter queue in the source queue's account and region, so only the
    name differs: no GetQueueUrl call (and no permission for one) is needed.
    """
    return queue_url.rstrip("/").rsplit("/", 1)[0] + "/" + target_arn.rsplit(":", 1)[-1]


class Queue:
    def __init__(self, sqs, url: str) -> None:
        self._sqs = translated(sqs)
        self.url = url
        self._redrive: Redrive | None = None

    def receive(self, wait_s: int, visibility_s: int) -> list[Message]:
        try:
            reply = self._sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=MAX_MESSAGES_PER_RECEIVE,
                WaitTimeSeconds=max(0, min(MAX_WAIT_S, int(wait_s))),
                VisibilityTimeout=visibility_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except AwsError as exc:
            raise QueueError(f"receive from {self.url}: {explain(exc)}") from exc
        return [
            Message(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m.get("Body", ""),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                sent_at_ms=int(m.get("Attributes", {}).get("SentTimestamp", "0")),
            )
            for m in reply.get("Messages", [])
        ]

    def delete(self, message: Message) -> None:
        try:
            self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)
        except AwsError as exc:
            raise QueueError(f"delete {message.message_id}: {explain(exc)}") from exc

    def set_visibility(self, message: Message, seconds: int) -> None:
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=seconds
            )
        except AwsError as exc:
            raise QueueError(f"change visibility of {message.message_id}: {explain(exc)}") from exc

    def read_redrive(self) -> Redrive | None:
        """Read the queue's redrive policy (once, at start): None without a dead-letter queue."""
        try:
            attrs = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
        except AwsError as exc:
            raise QueueError(f"read attributes of {self.url}: {explain(exc)}") from exc
        policy = attrs.get("Attributes", {}).get("RedrivePolicy")
        if policy:
            parsed = json.loads(policy)
            self._redrive = Redrive(int(parsed["maxReceiveCount"]),
                                    dead_letter_url(self.url, parsed["deadLetterTargetArn"]))
        return self._redrive

    def dead_letter(self, message: Message) -> bool:
        """Move a message to the dead-letter queue now: send its body there, then delete it here.

        False without a dead-letter queue: the message is left for redrive. If the delete
        fails after the send, a second copy may reach the dead-letter queue; none is lost.
        """
        if self._redrive is None:
            return False
        try:
            self._sqs.send_message(QueueUrl=self._redrive.dead_letter_url, MessageBody=message.body)
        except AwsError as exc:
            raise QueueError(f"dead-letter {message.message_id}: {explain(exc)}") from exc
        self.delete(message)
        return True
