"""Benchmark (not a test): the cost curve of our inventory against Ansible's amazon.aws.aws_ec2.

The fleet grows in one moto server (its own process): 1,000 and 5,000 instances in one
region, 10,000 over two (bench/scaled_fleet.py), each region split over a classic ELB, an
ALB, an Auto Scaling group and a tag. At each size both clients list the whole fleet in
alternating runs: ours from one config naming every site, Ansible's aws_ec2 plugin from one
inventory file naming every region. We print, per client, the median wall time, client CPU
(user+sys of the client process alone), peak RSS and the AWS API calls of one run; then our
ratios, the per-1,000-instance figures, and each target with ok or short.

    make bench                                       # every size, 3 runs each
    .venv/bin/python bench/inventory.py --sizes 1000 --runs 1   # a quick look
    .venv/bin/python bench/inventory.py --profile    # also profile ours at the largest size

Needs PyPI `ansible` (which carries the amazon.aws collection) in the same environment;
`make bench` installs it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import profile_report, scaled_fleet  # noqa: E402
from bench.harness import CountingMoto, Run, byte_compile_ours, environment, measure, median  # noqa: E402

REGIONS = ("us-east-1", "eu-west-1")
# Up to this size the fleet lives in one region; above it, half in each of two.
ONE_REGION_MAX = 5000
TARGET_CPU_RATIO = 0.15
TARGET_RSS_MB, TARGET_RSS_AT = 150.0, 10_000
# Per-1,000 cost may wobble by this much between sizes and still count as "at most linear":
# run-to-run noise on this machine is a few percent.
LINEAR_SLACK = 1.10
OURS, ANSIBLE = "ours", "ansible aws_ec2"


@dataclass
class SizeResult:
    instances: int
    seed_s: float
    floor: int
    floor_text: str
    runs: dict[str, list[Run]]

    def med(self, client: str, attribute: str) -> float:
        return median([getattr(r, attribute) for r in self.runs[client]])

    def calls(self, client: str) -> dict[str, int]:
        return self.runs[client][-1].calls


def layout(instances: int) -> tuple[tuple[str, ...], int]:
    """Which regions hold a fleet of this size, and how many instances each site has."""
    regions = REGIONS[:1] if instances <= ONE_REGION_MAX else REGIONS
    sites = 4 * len(regions)
    if instances % sites:
        raise SystemExit(f"--sizes: {instances} does not split over {sites} sites; use a multiple of {sites}")
    return regions, instances // sites


def our_command(workdir: Path, sites: list[scaled_fleet.RegionSites]) -> list[str]:
    config = workdir / "deploy.yml"
    config.write_text(yaml.safe_dump({
        "path": {
            "ssh_config_file": str(workdir / "ssh_config"),
            "cap_config_file": str(workdir / "cap.yml"),
            "ansible_inventory_file": str(workdir / "inventory.yml"),
        },
        "sites": {name: site for s in sites for name, site in scaled_fleet.our_sites(s).items()},
    }))
    # Every run writes its files anew, as Ansible writes its --output: the outputs are removed
    # first (by the shell, which then execs us, so the rusage measured is ours), so runs 2..N
    # never find unchanged files to leave alone.
    outputs = " ".join(f'"$0"/{name}' for name in ("ssh_config", "cap.yml", "inventory.yml", "*known_hosts"))
    return ["/bin/sh", "-c", f'rm -f {outputs}; exec "$@"', str(workdir),
            sys.executable, "-m", "helper", "inventory", "-c", str(config)]


def ansible_command(workdir: Path, url: str, regions: tuple[str, ...]) -> list[str]:
    inventory = workdir / "bench.aws_ec2.yml"
    inventory.write_text(yaml.safe_dump({
        "plugin": "amazon.aws.aws_ec2",
        "regions": list(regions),
        "endpoint_url": url,
        "filters": {"instance-state-name": "running"},
        "hostnames": ["instance-id"],
        "cache": False,
    }))
    tool = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent))
    if tool is None:
        raise SystemExit("ansible-inventory not found next to this Python; pip install ansible")
    return [tool, "-i", str(inventory), "--list", "--output", str(workdir / "ansible.json")]


def check_both_list_everything(workdir: Path, instances: int) -> None:
    """A benchmark of clients that list different fleets would compare nothing: count the hosts
    in the last run's output (ours: the SSH config it wrote, one Host line each)."""
    ours = sum(line.startswith("Host ") for line in (workdir / "ssh_config").read_text().splitlines())
    hostvars = json.loads((workdir / "ansible.json").read_text())["_meta"]["hostvars"]
    if ours != instances or len(hostvars) != instances:
        raise SystemExit(f"expected {instances} hosts; ours listed {ours}, Ansible {len(hostvars)}")


def bench_size(server: CountingMoto, fleet: dict[str, scaled_fleet.RegionSites], instances: int,
               runs: int, workdir: Path) -> SizeResult:
    regions, per_site = layout(instances)
    start = time.perf_counter()
    for region in regions:
        if region not in fleet:
            fleet[region] = scaled_fleet.create_region(server.url, region)
        scaled_fleet.grow(server.url, fleet[region], per_site)
    seed_s = time.perf_counter() - start
    sites = [fleet[r] for r in regions]
    env = environment(server.url, ANSIBLE_INVENTORY_ENABLED="amazon.aws.aws_ec2",
                      ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"))
    clients = {OURS: our_command(workdir, sites), ANSIBLE: ansible_command(workdir, server.url, regions)}
    results: dict[str, list[Run]] = {name: [] for name in clients}
    for _ in range(runs):
        for name, argv in clients.items():
            results[name].append(measure(argv, env, server, workdir / "ours.out" if name == OURS else None))
    check_both_list_everything(workdir, instances)
    floor, floor_text = scaled_fleet.api_floor(sites)
    return SizeResult(instances, seed_s, floor, floor_text, results)


def print_size(r: SizeResult, runs: int) -> None:
    print(f"\n{r.instances:,} instances ({r.floor_text.count(':')} region(s), 4 sites each; "
          f"grown to this size in {r.seed_s:.1f} s); medians of {runs} alternating runs")
    print(f"  {'client':<16} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}  API calls (one run)")
    for name in (OURS, ANSIBLE):
        calls = r.calls(name)
        listed = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
        print(f"  {name:<16} {r.med(name, 'wall_s'):8.2f} {r.med(name, 'cpu_s'):8.2f} "
              f"{r.med(name, 'peak_rss_mb'):12.1f}  {sum(calls.values())}: {listed}")
    ratios = [r.med(OURS, a) / r.med(ANSIBLE, a) for a in ("wall_s", "cpu_s", "peak_rss_mb")]
    print(f"  ours/ansible: wall {ratios[0]:.3f}, cpu {ratios[1]:.3f}, peak RSS {ratios[2]:.3f}")


def verdict(ok: bool) -> str:
    return "ok" if ok else "SHORT"


def print_targets(results: list[SizeResult]) -> bool:
    print("\nper 1,000 instances (ours): size, cpu s, peak RSS MB; marginal = change since the previous size")
    print(f"  {'size':>7} {'cpu/1k':>8} {'rss/1k':>8} {'marg cpu/1k':>12} {'marg rss/1k':>12}")
    previous = None
    for r in results:
        k = r.instances / 1000
        cpu, rss = r.med(OURS, "cpu_s"), r.med(OURS, "peak_rss_mb")
        marginal = ("", "")
        if previous is not None:
            dk = (r.instances - previous.instances) / 1000
            marginal = (f"{(cpu - previous.med(OURS, 'cpu_s')) / dk:.3f}",
                        f"{(rss - previous.med(OURS, 'peak_rss_mb')) / dk:.2f}")
        print(f"  {r.instances:>7,} {cpu / k:8.3f} {rss / k:8.2f} {marginal[0]:>12} {marginal[1]:>12}")
        previous = r

    print("\ntargets")
    met = True

    def line(name: str, seen: str, target: str, ok: bool) -> None:
        nonlocal met
        met = met and ok
        print(f"  {name:<44} {seen:>22}  target {target:<22} {verdict(ok)}")

    for r in results:
        ratio = r.med(OURS, "cpu_s") / r.med(ANSIBLE, "cpu_s")
        line(f"client CPU vs Ansible at {r.instances:,}", f"{ratio:.3f}x", f"<= {TARGET_CPU_RATIO}x",
             ratio <= TARGET_CPU_RATIO)
    for attribute, label in (("cpu_s", "CPU"), ("peak_rss_mb", "peak RSS")):
        per_k = [r.med(OURS, attribute) / (r.instances / 1000) for r in results]
        rising = all(b <= a * LINEAR_SLACK for a, b in zip(per_k, per_k[1:]))
        line(f"{label} per 1,000 does not rise with size", " -> ".join(f"{v:.2f}" for v in per_k),
             f"each <= prev x {LINEAR_SLACK}", rising)
    for r in results:
        seen = sum(r.calls(OURS).values())
        line(f"API calls at {r.instances:,}", f"{seen} (floor {r.floor})", f"<= floor {r.floor}", seen <= r.floor)
    largest = [r for r in results if r.instances >= TARGET_RSS_AT]
    if largest:
        rss = largest[0].med(OURS, "peak_rss_mb")
        line(f"peak RSS at {largest[0].instances:,}", f"{rss:.1f} MB", f"<= {TARGET_RSS_MB:g} MB",
             rss <= TARGET_RSS_MB)
    else:
        print(f"  peak RSS at {TARGET_RSS_AT:,}: not measured (add {TARGET_RSS_AT} to --sizes)")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000",
                        help="comma-separated fleet sizes, grown in this order (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each client per size, alternating")
    parser.add_argument("--profile", action="store_true",
                        help="after the largest size, profile our inventory there and print where the CPU goes")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})

    started = time.perf_counter()
    byte_compile_ours()
    with CountingMoto(replay_reads=True) as server, tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
        workdir = Path(tmp)
        fleet: dict[str, scaled_fleet.RegionSites] = {}
        results = []
        for size in sizes:
            results.append(bench_size(server, fleet, size, args.runs, workdir))
            print_size(results[-1], args.runs)
            sys.stdout.flush()
        met = print_targets(results)
        if args.profile:
            ours = our_command(workdir, [fleet[r] for r in layout(sizes[-1])[0]])
            env = environment(server.url)
            # The profiled run is ours alone, without the shell that clears the outputs first.
            profile_report.profile(ours[ours.index(sys.executable):], env, workdir, sizes[-1])
    print(f"\ninventory benchmark: {time.perf_counter() - started:.0f} s in all")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
