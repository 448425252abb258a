"""Least-privilege IAM policies, derived from one table of the AWS calls the code makes.

CALLS lists every (botocore service, operation) the package calls, the IAM action that
authorises it, who makes it and which resource it can be scoped to (a call appears twice
when two principals need it on different resources). The policy documents
are generated from it, and tests/setup/test_iam_policy.py records the calls the real inventory,
consumer and setup code paths make against moto and checks each one is in this table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from helper.config.document import Config
from helper.setup.hooks import POLICY_VERSION
from helper.setup.principals import CONSUMER, DEFAULT_PRINCIPALS, HELPER, HOOK_ROLE, PRINCIPALS, SETUP  # noqa: F401

# Resource kinds a call can be scoped to; "*" where the action has no resource-level permissions.
ANY, QUEUE, QUEUES, DLQ, GROUP, ROLE, SITE_ROLE = "*", "queue", "queues", "dlq", "group", "role", "site-role"
# The groups `fleet hold` may suspend: each site's asg: group and the lifecycle groups (issue 11).
HELD = "held"
# The SNS topic the consumer's alerts go to (lifecycle.alerts.sns_topic_arn; none: no statement).
TOPIC = "alert-topic"
STATEMENT_IDS = {TOPIC: "AlertTopic", HELD: "HeldGroups", ANY: "AnyResource", QUEUE: "HookQueue", QUEUES: "HookQueueAndDeadLetterQueue",
                 DLQ: "DeadLetterQueue", GROUP: "ConfiguredGroups", ROLE: "HookRole", SITE_ROLE: "SiteRoles"}


@dataclass(frozen=True)
class Call:
    service: str  # botocore's service name
    operation: str  # botocore's operation name
    action: str | None  # the IAM action; None: AWS needs no permission for it
    principals: tuple[str, ...]
    resource: str = ANY


CALLS = (
    # Inventory (helper/inventory/discover.py); the consumer's reconciler shares DescribeAutoScalingGroups,
    # and `doctor` (SETUP) resolves every site the way an inventory run does (issue 24: it lacked these).
    Call("ec2", "DescribeInstances", "ec2:DescribeInstances", (HELPER, SETUP)),
    Call("elb", "DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancers", (HELPER, CONSUMER, SETUP)),
    Call("elb", "DescribeInstanceHealth", "elasticloadbalancing:DescribeInstanceHealth", (HELPER, CONSUMER, SETUP)),
    Call("elbv2", "DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancers", (HELPER, SETUP)),
    Call("elbv2", "DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroups", (HELPER, CONSUMER, SETUP)),
    Call("elbv2", "DescribeTargetHealth", "elasticloadbalancing:DescribeTargetHealth", (HELPER, CONSUMER, SETUP)),
    Call("autoscaling", "DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingGroups",
         (HELPER, CONSUMER, SETUP)),
    Call("sts", "AssumeRole", "sts:AssumeRole", (HELPER, SETUP), SITE_ROLE),
    # The consumer (helper/consumer/sqs.py, helper/consumer/autoscaling.py).
    Call("sqs", "ReceiveMessage", "sqs:ReceiveMessage", (CONSUMER,), QUEUE),
    Call("sqs", "DeleteMessage", "sqs:DeleteMessage", (CONSUMER,), QUEUE),
    Call("sqs", "ChangeMessageVisibility", "sqs:ChangeMessageVisibility", (CONSUMER,), QUEUE),
    Call("sqs", "GetQueueAttributes", "sqs:GetQueueAttributes", (CONSUMER,), QUEUE),
    Call("autoscaling", "CompleteLifecycleAction", "autoscaling:CompleteLifecycleAction", (CONSUMER,), GROUP),
    Call("autoscaling", "RecordLifecycleActionHeartbeat", "autoscaling:RecordLifecycleActionHeartbeat",
         (CONSUMER,), GROUP),
    Call("autoscaling", "DescribeLifecycleHooks", "autoscaling:DescribeLifecycleHooks", (CONSUMER, SETUP)),
    # Checking messages before a build, and moving those that do not check out (helper/consumer/deployment.py).
    Call("autoscaling", "DescribeAutoScalingInstances", "autoscaling:DescribeAutoScalingInstances", (CONSUMER,)),
    Call("sqs", "SendMessage", "sqs:SendMessage", (CONSUMER,), DLQ),
    # Auto Scaling itself, with the hook role (AutoScalingNotificationAccessRole's actions).
    Call("sqs", "SendMessage", "sqs:SendMessage", (HOOK_ROLE,), QUEUE),
    Call("sqs", "GetQueueUrl", "sqs:GetQueueUrl", (HOOK_ROLE,), QUEUE),
    Call("sns", "Publish", "sns:Publish", (HOOK_ROLE,), QUEUE),
    # `hooks install/remove` and `doctor` (helper/setup/hooks_apply.py).
    Call("sts", "GetCallerIdentity", None, (SETUP,)),
    Call("sqs", "GetQueueUrl", "sqs:GetQueueUrl", (SETUP,), QUEUES),
    Call("sqs", "GetQueueAttributes", "sqs:GetQueueAttributes", (SETUP,), QUEUES),
    Call("sqs", "CreateQueue", "sqs:CreateQueue", (SETUP,), QUEUES),
    Call("sqs", "SetQueueAttributes", "sqs:SetQueueAttributes", (SETUP,), QUEUES),
    Call("sqs", "DeleteQueue", "sqs:DeleteQueue", (SETUP,), QUEUES),
    # install changes and remove deletes only queues and a role carrying its managed-by tag.
    Call("sqs", "ListQueueTags", "sqs:ListQueueTags", (SETUP,), QUEUES),
    Call("sqs", "TagQueue", "sqs:TagQueue", (SETUP,), QUEUES),  # not an API call: CreateQueue's tags
    Call("iam", "TagRole", "iam:TagRole", (SETUP,), ROLE),  # not an API call: CreateRole's Tags
    Call("iam", "GetRole", "iam:GetRole", (SETUP,), ROLE),
    Call("iam", "CreateRole", "iam:CreateRole", (SETUP,), ROLE),
    Call("iam", "DeleteRole", "iam:DeleteRole", (SETUP,), ROLE),
    Call("iam", "UpdateAssumeRolePolicy", "iam:UpdateAssumeRolePolicy", (SETUP,), ROLE),
    Call("iam", "ListRolePolicies", "iam:ListRolePolicies", (SETUP,), ROLE),
    Call("iam", "GetRolePolicy", "iam:GetRolePolicy", (SETUP,), ROLE),
    Call("iam", "PutRolePolicy", "iam:PutRolePolicy", (SETUP,), ROLE),
    Call("iam", "DeleteRolePolicy", "iam:DeleteRolePolicy", (SETUP,), ROLE),
    # PutLifecycleHook passes the hook role to Auto Scaling.
    Call("autoscaling", "PutLifecycleHook", "autoscaling:PutLifecycleHook", (SETUP,), GROUP),
    Call("autoscaling", "DeleteLifecycleHook", "autoscaling:DeleteLifecycleHook", (SETUP,), GROUP),
    Call("iam", "PassRole", "iam:PassRole", (SETUP,), ROLE),  # not an API call: PutLifecycleHook's RoleARN
    # `fleet hold` / `fleet release` (helper/deploys/fleet_hold.py): suspend, resume, and the hold's tag;
    # the consumer's reconcile releases expired holds of every group a hold can cover (issue 19 item 6).
    Call("autoscaling", "SuspendProcesses", "autoscaling:SuspendProcesses", (HELPER,), HELD),
    Call("autoscaling", "ResumeProcesses", "autoscaling:ResumeProcesses", (HELPER,), HELD),
    Call("autoscaling", "CreateOrUpdateTags", "autoscaling:CreateOrUpdateTags", (HELPER,), HELD),
    Call("autoscaling", "DeleteTags", "autoscaling:DeleteTags", (HELPER,), HELD),
    Call("autoscaling", "ResumeProcesses", "autoscaling:ResumeProcesses", (CONSUMER,), HELD),
    Call("autoscaling", "DeleteTags", "autoscaling:DeleteTags", (CONSUMER,), HELD),
    # The per-site breaker (helper/breaker/state.py): its state is a tag on the site's groups,
    # read and written by the consumer, read by `doctor` and `breaker status`, written by
    # `breaker reset`; the alerts publish to the configured topic (helper/breaker/alerts.py).
    Call("autoscaling", "DescribeTags", "autoscaling:DescribeTags", (CONSUMER, SETUP)),
    Call("autoscaling", "CreateOrUpdateTags", "autoscaling:CreateOrUpdateTags", (CONSUMER, SETUP), GROUP),
    # `breaker reset` (SETUP) sends the breaker-closed alert to the same topic (issue 24: it lacked it).
    Call("sns", "Publish", "sns:Publish", (CONSUMER, SETUP), TOPIC),
    # `rollout` (helper/deploys/load_balancers.py, rollout_record.py): every load balancer a batch's
    # hosts are in, out and back in, and the record on each instance taken out (issue 21). Load
    # balancer ARNs and instance ids are not known in advance: any resource, as ELB deploy tools need.
    Call("elbv2", "DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetGroupAttributes",
         (HELPER, SETUP)),
    Call("elbv2", "RegisterTargets", "elasticloadbalancing:RegisterTargets", (HELPER, CONSUMER)),
    Call("elbv2", "DeregisterTargets", "elasticloadbalancing:DeregisterTargets", (HELPER,)),
    Call("elb", "DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeLoadBalancerAttributes",
         (HELPER, SETUP)),
    Call("elb", "RegisterInstancesWithLoadBalancer", "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
         (HELPER, CONSUMER)),
    Call("elb", "DeregisterInstancesFromLoadBalancer", "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
         (HELPER,)),
    Call("ec2", "DescribeTags", "ec2:DescribeTags", (HELPER, CONSUMER)),
    Call("ec2", "CreateTags", "ec2:CreateTags", (HELPER,)),
    Call("ec2", "DeleteTags", "ec2:DeleteTags", (HELPER, CONSUMER)),
)


def _group_arn(region: str, account: str, group: str) -> str:
    return f"arn:aws:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/{group}"


def held_groups(config: Config | None, account: str) -> list[str]:
    """The groups `fleet hold` can touch: sites' asg: groups and the lifecycle groups; "*" without a config."""
    if config is None:
        return ["*"]
    lc = config.lifecycle
    arns = {_group_arn(s.region, account, s.source.value) for s in config.sites
            if s.source.kind == "auto_scaling_group"}
    arns |= {_group_arn(lc.region, account, g) for g in (lc.groups if lc else ())}
    return sorted(arns)


def resources(config: Config | None) -> dict[str, list[str]]:
    """Resource kind -> ARNs; without a config (or a lifecycle: section) every kind is "*"."""
    lc = config.lifecycle if config else None
    site_roles = sorted({s.role_arn for s in config.sites if s.role_arn}) if config else ["*"]
    if lc is None:
        return {ANY: ["*"], QUEUE: ["*"], QUEUES: ["*"], DLQ: ["*"], GROUP: ["*"], ROLE: ["*"],
                SITE_ROLE: site_roles, HELD: held_groups(config, "*"), TOPIC: ["*"]}
    account = lc.queue_account or "*"
    queue = f"arn:aws:sqs:{lc.region}:{account}:{lc.queue_name}"
    return {
        ANY: ["*"], QUEUE: [queue], QUEUES: [queue, f"{queue}-dlq"], DLQ: [f"{queue}-dlq"],
        GROUP: [f"arn:aws:autoscaling:{lc.region}:{account}:autoScalingGroup:*:autoScalingGroupName/{g}"
                for g in sorted(lc.groups)],
        ROLE: [f"arn:aws:iam::{account}:role/{lc.hook_role}"],
        SITE_ROLE: site_roles,
        HELD: held_groups(config, account),
        TOPIC: [lc.alerts.sns_topic_arn] if lc.alerts.sns_topic_arn else [],
    }


def document(principal: str, config: Config | None = None) -> dict:
    """One policy document: a statement per resource kind, actions sorted, no duplicates."""
    scoped = resources(config)
    by_kind: dict[str, set[str]] = {}
    for call in CALLS:
        if principal in call.principals and call.action and scoped[call.resource]:
            by_kind.setdefault(call.resource, set()).add(call.action)
    statements = []
    for kind in sorted(by_kind):
        arns = scoped[kind]
        statements.append({"Sid": STATEMENT_IDS[kind],
                           "Effect": "Allow", "Action": sorted(by_kind[kind]),
                           "Resource": arns[0] if len(arns) == 1 else arns})
    return {"Version": POLICY_VERSION, "Statement": statements}


def render(config: Config | None, principal: str | None = None) -> str:
    """One bare document for `principal` (ready for put-role-policy), else a mapping of them."""
    if principal is not None:
        return json.dumps(document(principal, config), indent=2) + "\n"
    return json.dumps({p: document(p, config) for p in DEFAULT_PRINCIPALS}, indent=2) + "\n"
