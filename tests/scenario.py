"""A scale-up world for consumer tests: moto with lifecycle hooks, the Jenkins emulator,
a group behind a classic ELB and a target group, a hook queue with a dead-letter queue,
and a deploy job whose command records the revision each instance got.

Tests drive it through the same clients the product uses (boto3, python-jenkins) and
poll with deadlines; nothing sleeps a fixed time.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import yaml

from helper.consumer.jenkins_client import BUILD_PARAMETERS
from helper.consumer.loop import Consumer
from helper.deploys import revision
from helper.sandbox.aws import fleet, lifecycle
from helper.sandbox.demo import jobs
from helper.sandbox.jenkins.emulator import JenkinsEmulator
from helper.settings import ConsumerSettings
from tests.polling import wait_for

REGION = "us-east-1"
GROUP = "web-asg"
SITE = "web"
JOB = "deploy"
JENKINS_USER, JENKINS_TOKEN = "deployer", "s3cret-token"
# Someone else with Build rights on the same job: their builds are never the consumer's.
OTHER_USER, OTHER_TOKEN = "operator", "0ther-token"

# The deploy job is the sandbox's own (helper/sandbox/demo/build.py): it asks the helper's
# inventory for the site's hosts, resolves the revision when the build starts (REVISION empty on a
# scale-up = what the site runs now), "installs" it as hosts/<alias>.revision and records it for
# full deploys. Files in the scenario's directory make it misbehave: fail/<instance id> fails the
# deploy of that instance, fail/once the next build; delay_s slows every build.


class Scenario:
    def __init__(self, aws_url: str, tmp: Path, heartbeat_timeout_s: int = 30,
                 max_receive_count: int = 5, quiet_period_s: float = 0.0, site: dict | None = None,
                 group: str = GROUP, job_name: str = JOB, **lifecycle_overrides) -> None:
        self.url = aws_url
        self.tmp = tmp
        self.group_name = group
        for sub in ("hosts", "revisions", "fail"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        revision.record(str(tmp / "revisions"), SITE, "v1")
        self.asg = fleet.client("autoscaling", aws_url, REGION)
        self.sqs = fleet.client("sqs", aws_url, REGION)
        self.elb = fleet.client("elb", aws_url, REGION)
        self.elbv2 = fleet.client("elbv2", aws_url, REGION)
        self.elb.create_load_balancer(
            LoadBalancerName="web-elb", AvailabilityZones=[f"{REGION}a"],
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}])
        _, self.tg_arn = fleet.alb_site(aws_url, REGION, "web-alb", 0)
        fleet.auto_scaling_site(aws_url, REGION, group, 2, load_balancers=("web-elb",),
                                target_groups=(self.tg_arn,))
        self.queue_url, queue_arn, self.dlq_url = fleet.lifecycle_queue(aws_url, REGION, "hooks")
        if max_receive_count != fleet.MAX_RECEIVE_COUNT:
            dlq_arn = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])
            self.sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"RedrivePolicy": json.dumps({
                "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": str(max_receive_count)})})
        fleet.launch_hook(aws_url, REGION, group, queue_arn, heartbeat_timeout_s=heartbeat_timeout_s)
        for i in self.instances():  # the first two run v1 already (named as the inventory names them)
            (tmp / "hosts" / f"{SITE}-{i}.revision").write_text("v1\n")
        self.jenkins = JenkinsEmulator(users={}, api_tokens={JENKINS_USER: JENKINS_TOKEN, OTHER_USER: OTHER_TOKEN},
                                       quiet_period_s=quiet_period_s, executors=4)
        self.jenkins.start()
        self.deploy_command = jobs.deploy_command(tmp / "deploy.yml", tmp, aws_url)
        self.add_deploy_job(JOB)
        self._site, self._overrides, self._job_name = site or {"asg": group}, lifecycle_overrides, job_name
        self.config_path = self._write_config(self.jenkins.url)
        self._threads: list[tuple[threading.Thread, threading.Event, Consumer]] = []

    def add_deploy_job(self, name: str) -> None:
        self.jenkins.add_job(name, [{"name": p, "default": ""} for p in BUILD_PARAMETERS],
                             command=self.deploy_command, concurrent=False)

    def set_lifecycle(self, **overrides) -> None:
        """Change lifecycle: keys for consumers started from now on (rewrites the config)."""
        self._overrides = {**self._overrides, **overrides}
        self._write_config(self.jenkins.url)

    def set_jenkins_url(self, url: str) -> None:
        """The consumer reaches Jenkins by `url` from now on (written to its config)."""
        self._write_config(url)

    def _write_config(self, jenkins_url: str) -> Path:
        site, overrides = self._site, self._overrides
        section = {
            "queue_url": self.queue_url, "region": REGION,
            "jenkins": {"url": jenkins_url, "job": self._job_name, "timeout_s": 5},
            "groups": {self.group_name: SITE},
            "batch_window_s": 0.3, "poll_interval_s": 0.05, "heartbeat_interval_s": 0.2,
            "receive_wait_s": 1, "visibility_timeout_s": 30, "reconcile_interval_s": 3600,
            "grace_period_s": 0.5, "jenkins_deadline_s": 30,
            **overrides,
        }
        config = {"sites": {SITE: site}, "lifecycle": section,
                  "path": {"revision_dir": str(self.tmp / "revisions")}}
        path = self.tmp / "deploy.yml"  # where deploy_command's builds read it
        path.write_text(yaml.safe_dump(config))
        return path

    # --- the consumer -------------------------------------------------------------------

    def consumer(self) -> Consumer:
        class Args:
            config, endpoint_url, once = str(self.config_path), self.url, False

        environ = {"JENKINS_USER": JENKINS_USER, "JENKINS_API_TOKEN": JENKINS_TOKEN}
        return Consumer.from_settings(ConsumerSettings.from_args(Args, environ))

    def start_consumer(self, prepare=None) -> tuple[Consumer, threading.Event]:
        """A consumer in a thread; `prepare(consumer)` first, e.g. to give it a faster clock."""
        consumer, stop = self.consumer(), threading.Event()
        if prepare is not None:
            prepare(consumer)
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        thread.start()
        self._threads.append((thread, stop, consumer))
        return consumer, stop

    def stop_consumers(self) -> None:
        for _, stop, _ in self._threads:
            stop.set()
        for thread, _, _ in self._threads:
            thread.join(timeout=30)
            assert not thread.is_alive(), "consumer did not stop"
        self._threads.clear()

    def close(self) -> None:
        try:
            self.stop_consumers()
        finally:
            self.jenkins.stop()
            lifecycle.set_time_scale(1.0)

    def env(self) -> dict:
        import os

        return {**os.environ, "JENKINS_USER": JENKINS_USER, "JENKINS_API_TOKEN": JENKINS_TOKEN,
                "AWS_ENDPOINT_URL": self.url}

    # --- the world --------------------------------------------------------------------------

    def group(self) -> dict:
        return self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group_name])["AutoScalingGroups"][0]

    def instances(self, state: str | None = None) -> list[str]:
        return sorted(i["InstanceId"] for i in self.group()["Instances"]
                      if state is None or i["LifecycleState"] == state)

    def scale_to(self, count: int) -> list[str]:
        before = set(self.instances())
        self.asg.set_desired_capacity(AutoScalingGroupName=self.group_name, DesiredCapacity=count)
        return sorted(set(self.instances()) - before)

    def in_elb(self) -> set[str]:
        lb = self.elb.describe_load_balancers(LoadBalancerNames=["web-elb"])["LoadBalancerDescriptions"][0]
        return {i["InstanceId"] for i in lb["Instances"]}

    def in_target_group(self) -> set[str]:
        health = self.elbv2.describe_target_health(TargetGroupArn=self.tg_arn)["TargetHealthDescriptions"]
        return {d["Target"]["Id"] for d in health if d["TargetHealth"]["State"] == "healthy"}

    def revision_of(self, instance_id: str) -> str | None:
        """What the deploy job last installed on the instance (hosts/<alias>.revision)."""
        found = sorted((self.tmp / "hosts").glob(f"*-{instance_id}.revision"))
        return found[0].read_text().strip() if found else None

    def builds(self):
        return self.jenkins.builds(JOB)

    def scale_up_builds_for(self, instance_id: str):
        return [b for b in self.builds() if instance_id in b.params.get("INSTANCE_IDS", "").split(",")]

    def queue_depth(self, url: str | None = None) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def take_notice(self, instance_id: str) -> tuple[dict, str]:
        """The launch notification of `instance_id` (body, receipt handle), hidden until release()."""
        def receive():
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                VisibilityTimeout=60).get("Messages", [])
            mine = [m for m in messages if instance_id in m["Body"]]
            for other in messages:  # the test notification and others stay for the consumer
                if other not in mine:
                    self.release(other["ReceiptHandle"])
            return mine

        (notice,) = wait_for(receive, what=f"the launch notification of {instance_id}")
        return json.loads(notice["Body"]), notice["ReceiptHandle"]

    def release(self, receipt_handle: str) -> None:
        self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle,
                                           VisibilityTimeout=0)

    def dead_letters(self) -> list[dict]:
        """Bodies in the dead-letter queue (left there: received with a short visibility)."""
        messages = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10,
                                            VisibilityTimeout=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def all_in_service(self, ids) -> bool:
        states = {i["InstanceId"]: i["LifecycleState"] for i in self.group()["Instances"]}
        return all(states.get(i) == "InService" for i in ids)
