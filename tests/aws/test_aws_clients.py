"""helper/aws/clients.py: the inventory's clients parse only the DescribeInstances fields discovery reads.

Issue 14's profile put most of our CPU in botocore's parse of fields we never read. These tests
hold the trimmed parse to the full one: whatever discovery makes of an instance is the same
either way, so trimming can only save work, never lose a field.
"""

from __future__ import annotations

import pytest

from helper.aws.clients import AccessKey, AwsClients, ModelUse, _ReadOnlyLoader
from helper.inventory.collect import inventory_clients
from helper.inventory.discover import INVENTORY_MODELS, instance_from_ec2
from helper.sandbox.aws import fleet

REGION = "us-east-1"


def _raw_instances(clients: AwsClients, ids: list[str]) -> list[dict]:
    pages = clients.ec2.get_paginator("describe_instances").paginate(InstanceIds=ids)
    return sorted((i for page in pages for r in page["Reservations"] for i in r["Instances"]),
                  key=lambda raw: raw["InstanceId"])


def test_trimmed_and_full_parses_make_the_same_instances(aws):
    ec2 = fleet.client("ec2", aws, REGION)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    ec2.associate_vpc_cidr_block(VpcId=vpc, AmazonProvidedIpv6CidrBlock=True)
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    ec2.associate_subnet_cidr_block(SubnetId=subnet, Ipv6CidrBlock="2001:db8:77:1::/64")
    with_v6 = ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2, SubnetId=subnet,
                                Ipv6AddressCount=2)["Instances"]
    plain = fleet.run_instances(ec2, 2, "web")  # default VPC: public IP and DNS names, a Name tag
    ec2.create_tags(Resources=plain, Tags=[{"Key": "Roles", "Value": "app,db"}, {"Key": "Empty", "Value": ""}])
    ids = [i["InstanceId"] for i in with_v6] + plain
    key = AccessKey(region=REGION, endpoint_url=aws)

    full = _raw_instances(AwsClients(key), ids)
    trimmed = _raw_instances(inventory_clients(key), ids)

    assert [instance_from_ec2(raw) for raw in trimmed] == [instance_from_ec2(raw) for raw in full]
    made = [instance_from_ec2(raw) for raw in trimmed]
    assert sum(1 for inst in made if inst.ipv6) == 2 and all(inst.private_ip for inst in made)
    assert {tag for inst in made for tag in inst.tags} >= {("Roles", "app,db"), ("Empty", ""), ("Name", "web")}
    # The trim is in force: fields nobody reads are not parsed at all.
    assert "ImageId" in full[0] and "ImageId" not in trimmed[0]
    assert set(trimmed[0]) <= dict(INVENTORY_MODELS["ec2"].shapes_read)["Instance"]


@pytest.mark.parametrize("use, why", [
    (ModelUse(frozenset({"DescribeInstances"}), (("Instance", frozenset({"InstanceId", "NoSuchField"})),)),
     "shape Instance has no member(s) ['NoSuchField']"),
    (ModelUse(frozenset({"DescribeInstances", "DescribeEverything"})), "no operation(s) ['DescribeEverything']"),
], ids=["renamed member", "renamed operation"])
def test_a_model_botocore_changed_warns_once_and_the_full_model_serves(aws, caplog, use, why):
    """A performance shortcut must never stop a deploy (issue 20): it failed the run before."""
    ids = fleet.run_instances(fleet.client("ec2", aws, REGION), 2, "web")
    clients = AwsClients(AccessKey(region=REGION, endpoint_url=aws), models_used={"ec2": use})
    with caplog.at_level("WARNING", logger="helper.aws.clients"):
        first = _raw_instances(clients, ids)
        again = _raw_instances(AwsClients(AccessKey(region=REGION, endpoint_url=aws), models_used={"ec2": use}), ids)
    assert [i["InstanceId"] for i in first] == sorted(ids) == [i["InstanceId"] for i in again]
    assert "ImageId" in first[0]  # the whole model: every member parsed
    warned = [r.getMessage() for r in caplog.records if "model_cut_skipped" in r.getMessage()]
    assert len(warned) == 1 and "service=ec2" in warned[0] and why in warned[0]


def test_the_cached_model_stays_whole_for_other_callers():
    loader = _ReadOnlyLoader(INVENTORY_MODELS)
    trimmed = loader.load_service_model("ec2", "service-2")
    whole = super(_ReadOnlyLoader, loader).load_service_model("ec2", "service-2")
    assert set(trimmed["shapes"]["Instance"]["members"]) == dict(INVENTORY_MODELS["ec2"].shapes_read)["Instance"]
    assert list(trimmed["operations"]) == ["DescribeInstances"]
    assert len(whole["shapes"]["Instance"]["members"]) > 40 and len(whole["operations"]) > 500
    # Other services, and other model types of ec2, come as botocore has them.
    assert loader.load_service_model("ec2", "paginators-1") is super(_ReadOnlyLoader, loader).load_service_model(
        "ec2", "paginators-1")
    assert "ImageId" in loader.load_service_model("ec2", "service-2")["shapes"]["RunInstancesRequest"]["members"]


@pytest.mark.parametrize("type_name", ["service-2", "endpoint-rule-set-1", "paginators-1"])
def test_the_loader_knows_the_services_botocore_lists_without_listing_them_all(type_name):
    import botocore.loaders

    listed = botocore.loaders.Loader().list_available_services(type_name)
    names = _ReadOnlyLoader(INVENTORY_MODELS).list_available_services(type_name)
    asked = [*listed[:: max(1, len(listed) // 40)], "ec2", "elbv2", "no-such-service", "ec2/../s3", "", "."]

    assert [n for n in asked if n in names] == [n for n in asked if n in listed]
    assert list(names) == listed and len(names) == len(listed)


def test_an_unknown_service_is_still_botocore_s_error_with_the_names_it_knows():
    import botocore.session
    from botocore.exceptions import UnknownServiceError

    session = botocore.session.Session()
    session.register_component("data_loader", _ReadOnlyLoader(INVENTORY_MODELS))

    with pytest.raises(UnknownServiceError, match=r"Unknown service: 'ec3'\. Valid service names are: .*\bec2\b"):
        session.create_client("ec3", region_name="us-east-1")


def test_an_operation_the_cut_model_lacks_is_served_by_the_full_model_with_one_warning(aws, caplog):
    """A caller that calls more than its ModelUse names (a rollout path nobody listed) must still run:
    before, the cut client had no such method and the deploy stopped on an AttributeError."""
    ids = fleet.run_instances(fleet.client("ec2", aws, REGION), 1, "web")
    clients = AwsClients(AccessKey(region=REGION, endpoint_url=aws),
                         models_used={"ec2": ModelUse(frozenset({"DescribeInstances"}))})
    with caplog.at_level("WARNING", logger="helper.aws.errors"):
        clients.ec2.create_tags(Resources=ids, Tags=[{"Key": "k", "Value": "v"}])  # not in the cut
        pages = clients.ec2.get_paginator("describe_tags").paginate(Filters=[{"Name": "resource-id", "Values": ids}])
        assert [t["Key"] for page in pages for t in page["Tags"]] == ["Name", "k"]
        clients.ec2.delete_tags(Resources=ids, Tags=[{"Key": "k"}])
    missed = [r.getMessage() for r in caplog.records if "model_cut_missed" in r.getMessage()]
    assert missed == ["event=model_cut_missed operation=create_tags fallback=full_model"], "once, then full"
    with pytest.raises(AttributeError):
        clients.ec2.no_such_operation()


def test_a_paginator_the_cut_model_lacks_is_served_by_the_full_model(aws):
    ids = fleet.run_instances(fleet.client("ec2", aws, REGION), 1, "web")
    clients = AwsClients(AccessKey(region=REGION, endpoint_url=aws),
                         models_used={"ec2": ModelUse(frozenset({"DescribeInstances"}))})
    pages = clients.ec2.get_paginator("describe_tags").paginate(Filters=[{"Name": "resource-id", "Values": ids}])
    assert [t["Key"] for page in pages for t in page["Tags"]] == ["Name"]
