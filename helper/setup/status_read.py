"""`status`'s edge: the facts, read (never written) from Auto Scaling, EC2, the revision files and,
when the config has Jenkins and credentials, Jenkins. status.py judges and renders them.

Calls, per region the sites use: one DescribeAutoScalingGroups walk for their groups, one
DescribeLifecycleHooks per group with waiting launches, one DescribeInstances for those launches'
ages, the rollout records' DescribeTags; per site: the breaker's tags (breaker_cmd.read); one
Jenkins read of each job's queue and last builds. A source that fails is a problem line in the
site's status (and needs a person), never a traceback: the rest still shows.
"""

from __future__ import annotations

from datetime import datetime, timezone

from helper.aws.access import AccessKey
from helper.aws.clients import AwsClients
from helper.aws.errors import AwsError, translated
from helper.aws.hook_timeouts import global_timeout_s, heartbeat_timeout_s
from helper.deploys import revision as revisions
from helper.deploys.hold_record import TAG_KEY as HOLD_TAG
from helper.deploys.hold_record import HoldRecord, decode, is_expired
from helper.deploys.rollout_record import RecordError, RolloutRecords
from helper.errors import HelperError
from helper.setup.status import Build, Hold, OutHost, SiteStatus, Waiting

WAITING_STATES = ("Pending:Wait", "Warmed:Pending:Wait")
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"


def _revisions(status: SiteStatus, revision_dir: str | None) -> None:
    if not revision_dir:
        return
    try:
        status.revision = revisions.read(revision_dir, status.site)
        earlier = [e.revision for e in revisions.history(revision_dir, status.site)]
        status.previous = next((r for r in reversed(earlier[:-1]) if r != status.revision), None)
    except HelperError as exc:
        status.problems.append(str(exc))


def _groups(asg, status: SiteStatus, now: datetime) -> list[dict]:
    """Fills instances and holds; returns the waiting instances' raw entries (with their group)."""
    waiting = []
    pages = asg.get_paginator("describe_auto_scaling_groups").paginate(
        AutoScalingGroupNames=status.groups)
    for page in pages:
        for group in page["AutoScalingGroups"]:
            for instance in group.get("Instances", []):
                state = instance.get("LifecycleState", "?")
                status.instances[state] = status.instances.get(state, 0) + 1
                if state in WAITING_STATES:
                    waiting.append({**instance, "group": group["AutoScalingGroupName"]})
            tag = next((t.get("Value", "") for t in group.get("Tags", []) if t.get("Key") == HOLD_TAG), None)
            if tag is not None:
                record = decode(tag, now)
                if isinstance(record, HoldRecord):
                    status.holds.append(Hold(group["AutoScalingGroupName"], record.holder, record.until,
                                             is_expired(record, now)))
                else:
                    status.problems.append(f"{group['AutoScalingGroupName']}: fleet hold tag unreadable: {record.why}")
    return waiting


def _when(value) -> datetime | None:
    """An AWS timestamp as botocore gives it: a datetime, or the ISO text our clients keep."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)).astimezone(timezone.utc)
    except ValueError:
        return None


def _waiting(asg, ec2, raw: list[dict], builds: dict[str, Build], now: datetime) -> list[Waiting]:
    if not raw:
        return []
    hooks = {}
    for group in sorted({w["group"] for w in raw}):
        found = asg.describe_lifecycle_hooks(AutoScalingGroupName=group)["LifecycleHooks"]
        hooks[group] = next((h for h in found if h.get("LifecycleTransition") == LAUNCHING), {})
    launched = {}
    for page in ec2.get_paginator("describe_instances").paginate(
            InstanceIds=[w["InstanceId"] for w in raw]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                launched[instance["InstanceId"]] = _when(instance.get("LaunchTime"))
    found = []
    for w in sorted(raw, key=lambda w: w["InstanceId"]):
        at = launched.get(w["InstanceId"])
        heartbeat = heartbeat_timeout_s(hooks[w["group"]])
        found.append(Waiting(w["InstanceId"], w["group"], w["LifecycleState"],
                             None if at is None else (now - at).total_seconds(), heartbeat,
                             global_timeout_s(heartbeat), builds.get(w["InstanceId"])))
    return found


def builds_by_instance(jobs, job_names: set[str]) -> dict[str, Build]:
    """instance id -> the newest queue item or build whose LIFECYCLE_ACTIONS names it."""
    found: dict[str, Build] = {}
    for job in sorted(job_names):
        for item in jobs.recent(job):  # queue items first, then builds newest first
            state = "queued" if item.build_number is None else ("running" if item.building else item.result or "?")
            for ref in item.refs:
                parts = ref.split(":")
                if len(parts) == 3 and parts[1] not in found:
                    found[parts[1]] = Build(jobs.build_url(job, item.build_number), state)
    return found


def read(settings, only: str | None, breakers) -> list[SiteStatus]:
    """Every site's status (or `only`'s). `breakers(site) -> dict | None` reads a site's breaker."""
    config, lc = settings.config, settings.config.lifecycle
    now = datetime.now(timezone.utc)
    builds: dict[str, Build] = {}
    jenkins_problem = None
    if lc is not None and settings.jenkins_user:
        from helper.consumer.jenkins_client import JenkinsJobs
        try:
            jobs = JenkinsJobs.connect(lc.jenkins.url, settings.jenkins_user, settings.jenkins_token,
                                       lc.jenkins.timeout_s)
            builds = builds_by_instance(jobs, {route.job for route in lc.groups.values()})
        except HelperError as exc:  # JenkinsUnavailable, JobMissing
            jenkins_problem = f"Jenkins: {exc}"
    statuses = []
    for site in config.sites:
        if only not in (None, site.name):
            continue
        status = SiteStatus(site.name, groups=list(config.hold_groups(site=site.name)))
        _revisions(status, config.paths.revision_dir)
        key = AccessKey.for_site(site, settings.endpoint_url, config.credentials, config.profile)
        if lc is not None and lc.groups_of(site.name):
            key = AccessKey(region=lc.region, endpoint_url=settings.endpoint_url, credentials=config.credentials,
                            profile=config.profile)
        clients = AwsClients(key)
        asg, ec2 = translated(clients.autoscaling), translated(clients.client("ec2"))
        try:
            if status.groups:
                status.waiting = _waiting(asg, ec2, _groups(asg, status, now), builds, now)
            records, unreadable = RolloutRecords(ec2).read(site.name)
            status.rollout = [OutHost(r.instance_id, r.state, r.holder, r.until, r.expired(now)) for r in records]
            status.problems += [f"rollout record: {p}" for p in unreadable]
            status.breaker = breakers(site.name)
        except (AwsError, RecordError, HelperError) as exc:  # a line of the report, not its end
            status.problems.append(f"AWS: {type(exc).__name__}: {str(exc)[:200]}")
        if jenkins_problem and status.waiting:
            status.problems.append(jenkins_problem)
        statuses.append(status)
    return statuses
