"""What AWS's identifiers look like, and what an SQS queue URL says. Pure; no botocore.

Every module that checks an instance id or reads a queue's account imports it from here,
so the consumer, the inventory and the command line agree on one rule.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

# EC2 instance ids: `i-` and 8 (old) or 17 (current) hex digits. Use fullmatch: `$` would
# let a value end in a newline.
INSTANCE_ID_RE = re.compile(r"i-[0-9a-f]{8,17}")
# The same, found inside a text (EC2's error messages name the ids they did not find).
INSTANCE_ID_IN_TEXT_RE = re.compile(rf"\b{INSTANCE_ID_RE.pattern}\b")
# Auto Scaling's describe calls take at most this many names (DescribeAutoScalingGroups,
# DescribeTags filter values) or instance ids (DescribeAutoScalingInstances) a call.
AUTOSCALING_NAMES_PER_CALL = 50
# EC2's DescribeTags filter takes at most 200 values; CreateTags/DeleteTags take up to 1,000
# resources and AWS asks for smaller batches: the same 200 for all three.
EC2_RESOURCES_PER_CALL = 200
# IAM's limit on a role name.
ROLE_NAME_MAX_CHARS = 64
# IAM role names: letters, digits and `+=,.@_-` (the IAM API's pattern), at most 64 characters.
ROLE_NAME_RE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
# A role's ARN in any partition: arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME.
ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII)
# Lifecycle hook names: the Auto Scaling API's pattern [A-Za-z0-9\-_\/]+, at most 255 characters.
HOOK_NAME_RE = re.compile(r"[A-Za-z0-9_/-]{1,255}")


def is_instance_id(text: str) -> bool:
    return INSTANCE_ID_RE.fullmatch(text) is not None


def queue_name(queue_url: str) -> str:
    """`hooks` of https://sqs.us-east-1.amazonaws.com/123456789012/hooks."""
    return urlparse(queue_url).path.rstrip("/").rsplit("/", 1)[-1]


def queue_account(queue_url: str) -> str | None:
    """The account id an SQS queue URL names, or None when it names none (a local endpoint)."""
    parts = urlparse(queue_url).path.strip("/").split("/")
    return parts[0] if parts and parts[0].isdigit() else None


def chunks(items: list, size: int) -> list[list]:
    """`items` in runs of at most `size`, in order: one call's worth each (the limits above)."""
    return [items[start:start + size] for start in range(0, len(items), size)]
