"""The sandbox's speedups of moto (helper/sandbox/aws/speedups.py, server.py) answer as moto does.

Each patched path is held to moto's own implementation, called on the same state.
"""

from __future__ import annotations

import time

import boto3
import pytest
from moto.ec2.utils import generic_filter

from helper.sandbox.aws import speedups
from helper.sandbox.aws.server import _dispatcher

ACCOUNT, REGION = "123456789012", "us-east-1"


def test_the_clock_without_a_datetime_is_now_and_with_one_is_moto_s():
    from datetime import datetime

    from moto.core import utils
    from moto.sqs import models

    before = time.time()
    now_s, now_ms = models.unix_time(), models.unix_time_millis()
    after = time.time()
    fixed = datetime(2024, 2, 29, 12, 30, 15, 250000)

    assert before <= now_s <= after and before * 1000 <= now_ms <= after * 1000
    assert utils.unix_time() == pytest.approx(now_s, abs=1.0)
    assert models.unix_time(fixed) == utils.unix_time(fixed)
    assert models.unix_time_millis(fixed) == utils.unix_time_millis(fixed)


@pytest.mark.parametrize("age_s, retention_s", [(0, 60), (59, 60), (61, 60), (3600, 345600)])
def test_the_retention_check_agrees_with_moto_s(aws, age_s, retention_s):
    from moto.sqs.models import Message, SQSBackend, sqs_backends

    sqs = boto3.client("sqs", endpoint_url=aws, region_name=REGION)
    sqs.create_queue(QueueName="retained", Attributes={"MessageRetentionPeriod": str(retention_s)})
    backend = sqs_backends[ACCOUNT][REGION]
    message = Message("m-1", "body")
    message.sent_timestamp = int((time.time() - age_s) * 1000)

    ours = speedups._retention_check(backend, "retained", message)
    moto_s = SQSBackend.get_queue_attributes  # the original reads every attribute to find this one
    expected = (retention_s + message.sent_timestamp / 1000) > time.time()

    assert ours is expected
    assert moto_s(backend, "retained", ["MessageRetentionPeriod"])["MessageRetentionPeriod"] == retention_s


@pytest.mark.parametrize("filters", [
    lambda known: {"image-id": known},
    lambda known: {"image-id": "ami-00000000000000000"},   # no such image
    lambda known: {"image-id": known[:-3] + "*"},          # a wildcard: moto's own path
    lambda known: {"image-id": known, "state": "available"},
    lambda known: {"image-id": [known]},
])
def test_an_image_lookup_by_id_finds_what_moto_s_filter_finds(aws, filters):
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[ACCOUNT][REGION]
    known = next(iter(backend.amis))
    wanted = filters(known)

    found = [a.id for a in backend.describe_images(filters=wanted)]

    # moto's own describe_images with filters is this generic filter over every image.
    assert found == [a.id for a in generic_filter(wanted, list(backend.amis.values()))]


def test_a_launched_instance_still_takes_its_image_s_properties(aws):
    """Instance creation is where moto looks an image up by id; an unknown one gets moto's defaults."""
    ec2 = boto3.client("ec2", endpoint_url=aws, region_name=REGION)
    image = next(i for i in ec2.describe_images()["Images"] if i.get("Architecture") == "arm64")

    launched = ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1)["Instances"][0]
    unknown = ec2.run_instances(ImageId="ami-00000000000000000", MinCount=1, MaxCount=1)["Instances"][0]

    assert (launched["Architecture"], launched["RootDeviceName"]) == (image["Architecture"], image["RootDeviceName"])
    assert (unknown["Architecture"], unknown["RootDeviceName"]) == ("x86_64", "/dev/sda1")


@pytest.mark.parametrize("host", [
    None, "moto_api", "sqs", "sqs.us-east-1.amazonaws.com", "autoscaling.eu-west-1.amazonaws.com",
    "ec2.us-east-1.amazonaws.com", "elasticloadbalancing.us-east-1.amazonaws.com", "nothing.example",
])
def test_the_dispatcher_remembers_the_backend_moto_would_pick(host):
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    remembering = _dispatcher(create_backend_app)
    plain = DomainDispatcherApplication(create_backend_app)

    first = remembering.get_backend_for_host(host)
    assert first == plain.get_backend_for_host(host)
    assert remembering.get_backend_for_host(host) == first
    assert host in remembering._backend_by_host


def test_the_dispatcher_stops_remembering_past_its_bound_and_still_answers(monkeypatch):
    """The host comes from the request: a client inventing hosts must not grow the memo forever."""
    from moto.moto_server.werkzeug_app import create_backend_app

    from helper.sandbox.aws import server

    monkeypatch.setattr(server, "REMEMBERED_HOSTS", 3)
    remembering = _dispatcher(create_backend_app)
    hosts = [f"sqs.region-{n}.amazonaws.com" for n in range(6)]

    answers = [remembering.get_backend_for_host(h) for h in hosts]

    assert answers == ["sqs"] * 6
    assert len(remembering._backend_by_host) == 3
