"""Benchmark (not a test): our inventory vs Ansible's amazon.aws.aws_ec2 plugin.

1,000 instances in moto behind an Auto Scaling group and an ALB. Both clients inventory
the same instances from the same moto server, in alternating runs; we print for each the
median wall time, the median CPU time of the client process (user+sys; moto runs in a
process of its own) and the AWS API calls it made, then our figures as ratios of
Ansible's.

Targets: our CPU <= 1/5 of Ansible's, our wall <= 0.6 x Ansible's, and API calls no more
than the lookups of the site's load balancer or group plus one describe per 1,000
instances.

Needs PyPI `ansible` (which carries the amazon.aws collection) in the same environment:
    .venv/bin/pip install ansible
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import CountingMoto, environment, measure, median  # noqa: E402
from helper.sandbox.aws import fleet  # noqa: E402

REGION = "us-east-1"
GROUP = "bench-workers"


def seed(url: str, instances: int) -> str:
    dns, tg_arn = fleet.alb_site(url, REGION, "bench-alb", 0)
    fleet.auto_scaling_site(url, REGION, GROUP, instances, target_groups=(tg_arn,))
    return dns


def our_command(workdir: Path, site: dict) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "deploy.yml"
    config.write_text(yaml.safe_dump({
        "path": {
            "ssh_config_file": str(workdir / "ssh_config"),
            "cap_config_file": str(workdir / "cap.yml"),
            "ansible_inventory_file": str(workdir / "inventory.yml"),
        },
        "sites": {"bench": {"region": REGION, **site}},
    }))
    helper = Path(sys.executable).with_name("aws-deploy-helper")
    # --dry-run: render everything, diff against nothing, touch no file, so every run
    # does the same work instead of finding unchanged files on runs 2..N.
    return [str(helper), "inventory", "-c", str(config), "--dry-run"]


def ansible_command(workdir: Path, url: str) -> list[str]:
    inventory = workdir / "bench.aws_ec2.yml"
    inventory.write_text(yaml.safe_dump({
        "plugin": "amazon.aws.aws_ec2",
        "regions": [REGION],
        "endpoint_url": url,
        "filters": {"tag:aws:autoscaling:groupName": GROUP, "instance-state-name": "running"},
        "hostnames": ["instance-id"],
        "cache": False,
    }))
    tool = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent))
    if tool is None:
        raise SystemExit("ansible-inventory not found next to this Python; pip install ansible")
    return [tool, "-i", str(inventory), "--list", "--output", str(workdir / "ansible.json")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="runs of each client, alternating")
    args = parser.parse_args()

    with CountingMoto() as server, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        dns = seed(server.url, args.instances)
        env = environment(server.url, ANSIBLE_INVENTORY_ENABLED="amazon.aws.aws_ec2",
                          ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"))
        clients = {
            "ours (ALB site)": our_command(workdir / "alb", {"load_balancer": dns}),
            "ours (ASG site)": our_command(workdir / "asg", {"auto_scaling_group": GROUP}),
            "ansible aws_ec2": ansible_command(workdir, server.url),
        }
        runs: dict[str, list] = {name: [] for name in clients}
        for _ in range(args.runs):
            for name, argv in clients.items():
                runs[name].append(measure(argv, env, server))

        print(f"{args.instances} instances behind an ALB and an ASG in moto; {args.runs} alternating runs each")
        print(f"{'client':<18} {'wall s':>8} {'cpu s':>8}  API calls (one run)")
        summary = {}
        for name, results in runs.items():
            wall = median([r.wall_s for r in results])
            cpu = median([r.cpu_s for r in results])
            calls = results[-1].calls
            summary[name] = (wall, cpu, calls)
            listed = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
            print(f"{name:<18} {wall:8.2f} {cpu:8.2f}  {sum(calls.values())}: {listed}")
        a_wall, a_cpu, _ = summary["ansible aws_ec2"]
        for name in ("ours (ALB site)", "ours (ASG site)"):
            wall, cpu, calls = summary[name]
            describes = calls.get("DescribeInstances", 0)
            budget = -(-args.instances // 1000)
            print(f"{name}: cpu ratio {cpu / a_cpu:.3f} (target <= 0.200), "
                  f"wall ratio {wall / a_wall:.3f} (target <= 0.600), "
                  f"DescribeInstances {describes} (budget {budget})")


if __name__ == "__main__":
    main()
