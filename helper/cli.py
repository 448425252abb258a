"""The command line: the only place that reads flags, and the one error boundary.

Every HelperError becomes one line on stderr and a non-zero exit; nothing else in the
package catches broad exceptions. Commands import their flow when they run, so a command
loads only what it uses (`revision get` loads no AWS SDK: tests/test_edges.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from helper import PROG, __version__, commands
from helper.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ConfigError, HelperError
from helper.logfmt import configure_logging

# What `aws-deploy-helper --help` tells its users; the commands list themselves below it.
DESCRIPTION = """\
Tells a deploy job which EC2 instances serve each site, and holds the instances an Auto
Scaling group launches until a deploy has reached them.

The two main commands:
  inventory   ask AWS which instances serve each site (load balancer, target group, Auto
              Scaling group or tags) and write the SSH config and Capistrano, Ansible or
              JSON inventories a deploy step reads
  consume     read the lifecycle hook's queue, deploy each new instance through Jenkins,
              then let it into service (CONTINUE) or replace it (ABANDON)

`hooks install` creates the queue and hooks `consume` reads, `doctor` checks every setting,
and `sandbox up` runs a local AWS and Jenkins to try it all without an account."""
EPILOG = ("Documentation: README.md for a first run, docs/ for the config reference, the Jenkins wiring and more,\n"
          "and contrib/systemd/ for the consumer's unit: in the source, and installed with the package under\n"
          f"{sys.prefix}/share/doc/aws-deploy-helper/.")

# Exit codes: 1 = a site or an action failed; 2 = the command line or config is wrong
# (argparse also uses 2); 130 = interrupted.


def _parent(*flags: str, **argument) -> argparse.ArgumentParser:
    """A flag several commands share, declared once (argparse parents)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(*flags, **argument)
    return parent


# Each shared flag means the same for every command that takes it.
CONFIG = _parent("-c", "--config", required=True, help="the YAML configuration file")
CONFIG_OPTIONAL = _parent("-c", "--config", help="the YAML configuration file")
ENDPOINT = _parent("--endpoint-url", help="AWS endpoint for every service (default: $AWS_ENDPOINT_URL)")
DRY_RUN = _parent("--dry-run", action="store_true", help="show what would change; change nothing")


def _inventory_parser(sub) -> None:
    p = sub.add_parser("inventory", parents=[CONFIG, ENDPOINT, DRY_RUN],
                       help="write the SSH config and deploy inventories for each site")
    p.add_argument("--site", action="append", metavar="NAME", help="only this site (repeatable)")
    p.add_argument("--instance-ids", action="append", metavar="IDS",
                   help="only these instances of the one --site, in service or not (comma separated)")
    p.add_argument("--include-out-of-service", action="store_true",
                   help="also instances that are pending, unhealthy, draining or in Pending:Wait")
    p.add_argument("--ssh-config", metavar="PATH", help="write the SSH config here (overrides path.ssh_config_file)")
    p.add_argument("--ssh-config-block", action="store_true",
                   help="keep our hosts in a managed block inside an existing SSH config")
    p.add_argument("--known-hosts", metavar="PATH", help="the UserKnownHostsFile the helper manages")
    p.add_argument("--cap-config", metavar="PATH", help="write the Capistrano YAML here")
    p.add_argument("--ansible-inventory", metavar="PATH", help="write the Ansible YAML inventory here")
    p.add_argument("--json", metavar="PATH", help="write JSON here ('-' for stdout)")
    p.add_argument("--list", action="store_true", help="print the host aliases on stdout, one a line")
    p.add_argument("--keep-going", action="store_true",
                   help="write the sites that worked even if others failed (still exits non-zero)")
    p.set_defaults(func=commands.run_inventory)


def _sandbox_parser(sub) -> None:
    p = sub.add_parser("sandbox", help="a local AWS (and Jenkins) on 127.0.0.1 for demos and tests")
    actions = p.add_subparsers(dest="sandbox_action", required=True)
    for name, text in (("up", "start it in the background and seed the demo fleet"),
                       ("down", "stop it"), ("status", "print its endpoints"),
                       ("scale", "set a demo group's desired capacity and show its instances"),
                       ("serve", "run it in the foreground until interrupted")):
        a = actions.add_parser(name, help=text)
        a.add_argument("--state-dir", default=".sandbox", help="where its state and demo config live")
        if name == "scale":
            a.add_argument("group", help="an Auto Scaling group of the sandbox, e.g. workers-asg")
            a.add_argument("desired", type=int, nargs="?", help="the new desired capacity (omit to only show)")
        if name in ("up", "serve"):
            a.add_argument("--port", type=int, default=0, help="moto's port (default: a free one)")
            a.add_argument("--jenkins-port", type=int, default=0,
                           help="the Jenkins emulator's port (default: a free one)")
            a.add_argument("--time-scale", type=_positive_float, default=None, metavar="X",
                           help="run the sandbox clock X times faster, so hook timeouts pass in seconds")
            a.add_argument("--hosts", action="store_true",
                           help="make every demo instance a real SSH host (root only; see docs/sandbox.md)")
    p.set_defaults(func=None)  # the sandbox plugs its runner in: helper/program.py


def _revision_parser(sub) -> None:
    p = sub.add_parser("revision", parents=[CONFIG_OPTIONAL],
                       help="read, record, check or resolve the revision a site deploys")
    p.add_argument("action", choices=("get", "set", "check", "resolve", "history", "previous"),
                   help="get/set: the site's recorded revision; check: print --revision if it is one the"
                        " helper would deploy, else exit 2; resolve: print the revision a build deploys;"
                        " history: the site's last revisions, newest first; previous: the revision a"
                        " rollback goes to (--revision: that one, if the site ran it)")
    p.add_argument("--site", help="the site (get, set and resolve)")
    p.add_argument("--revision", help="with set: the revision that was deployed; with check: the one to check;"
                                      " with resolve: the one asked for (empty: none)")
    p.add_argument("--scale-up", action="store_true",
                   help="with resolve: a scale-up build, which deploys the site's recorded revision")
    p.add_argument("--rollback-from", metavar="REVISION",
                   help="with set: this record rolls back from REVISION (a later rollback skips it)")
    p.set_defaults(func=commands.run_revision)


def _consume_parser(sub) -> None:
    p = sub.add_parser("consume", parents=[CONFIG, ENDPOINT],
                       help="deploy instances held by a launching lifecycle hook, then complete them")
    p.add_argument("--once", action="store_true",
                   help="handle what is in the queue, wait for the deploys it started, and exit")
    p.set_defaults(func=commands.run_consume)


def _hooks_parser(sub) -> None:
    p = sub.add_parser("hooks", help="create, update or remove the queue, DLQ, hook role and lifecycle hooks")
    actions = p.add_subparsers(dest="hooks_action", required=True)
    for name, text in (("install", "make AWS match the lifecycle: section (idempotent)"),
                       ("remove", "delete the hooks, then the queue and DLQ, then the hook role")):
        a = actions.add_parser(name, parents=[CONFIG, DRY_RUN, ENDPOINT], help=text)
        if name == "remove":
            a.add_argument("--force", action="store_true",
                           help="delete the queue and dead-letter queue even when they hold messages")
    p.set_defaults(func=commands.run_hooks)


def _iam_policy_parser(sub) -> None:
    from helper.setup.principals import PRINCIPALS

    p = sub.add_parser("iam-policy", help="print least-privilege IAM policies for the helper, consumer and hook role")
    # Not CONFIG: here the file only narrows the resources, and every document prints without it.
    p.add_argument("-c", "--config", help="scope resources to this config's queue, groups and roles (default: *)")
    p.add_argument("--principal", choices=PRINCIPALS,
                   help="print only this one document (setup: whoever runs hooks install and doctor)")
    p.set_defaults(func=commands.run_iam_policy)


def _doctor_parser(sub) -> None:
    p = sub.add_parser("doctor", parents=[CONFIG, ENDPOINT],
                       help="check config, AWS, sites, hooks, queue and Jenkins; one line per finding")
    p.set_defaults(func=commands.run_doctor)


def _fleet_parser(sub) -> None:
    p = sub.add_parser("fleet", help="hold a site's Auto Scaling groups still during a full deploy, or release them")
    actions = p.add_subparsers(dest="fleet_action", required=True)
    for name, text in (("hold", "suspend the processes that remove hosts (lifecycle.hold.processes); "
                                "scale-out stays allowed"),
                       ("release", "resume only what the hold suspended")):
        a = actions.add_parser(name, parents=[CONFIG, ENDPOINT], help=text)
        a.add_argument("--site", required=True, help="the site whose groups to hold or release")
        a.add_argument("--holder", help="who holds (default: $BUILD_URL, else user@host); release touches "
                                        "only this holder's hold, or any hold when neither is set")
        if name == "hold":
            a.add_argument("--ttl-s", type=_positive_float, metavar="SECONDS",
                           help="the hold expires after this long (default: lifecycle.hold.ttl_s, 7200)")
    p.set_defaults(func=commands.run_fleet)


def _status_parser(sub) -> None:
    p = sub.add_parser("status", parents=[CONFIG, ENDPOINT],
                       help="per site: revision, instances, waiting launches and their builds, breaker, hold, "
                            "rollout; exit 1 when something needs a person",
                       description="status -c FILE [--site S] [--json]: read-only, from AWS and Jenkins. Exit 0: "
                                   "nothing needs a person; 1: something does (each said on a NEEDS A PERSON line).")
    p.add_argument("--site", help="only this site")
    p.add_argument("--json", action="store_true", help="print the stable JSON form (docs/operations.md)")
    p.set_defaults(func=commands.run_status)


def _breaker_parser(sub) -> None:
    p = sub.add_parser("breaker", help="show or reset the per-site breakers that stop a failing revision's deploys")
    actions = p.add_subparsers(dest="breaker_action", required=True)
    status = actions.add_parser("status", parents=[CONFIG, ENDPOINT],
                                help="each site's breaker: state, why, since when, instances held")
    status.add_argument("--site", help="only this site")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    reset = actions.add_parser("reset", parents=[CONFIG, ENDPOINT],
                               help="close a site's breaker; the consumer then deploys the held instances")
    reset.add_argument("--site", required=True, help="the site whose breaker to close")
    p.set_defaults(func=commands.run_breaker)


ROLLOUT_ACTIONS = ("run", "plan", "status", "abort")


def _rollout_parser(sub) -> None:
    p = sub.add_parser("rollout", parents=[CONFIG, ENDPOINT], help="deploy a site batch by batch behind its load balancers (docs/rollout.md)",
                       description="rollout [run] -c FILE --site S --revision R -- DEPLOY COMMAND...: each batch "
                                   "leaves every load balancer, drains, is deployed and verified, and comes back "
                                   "healthy before the next; plan shows the batches; status and abort read and undo "
                                   "what a rollout took out.")
    p.add_argument("rollout_action", choices=ROLLOUT_ACTIONS, help="run (the default), plan, status or abort")
    p.add_argument("--site", required=True, help="the site to roll through")
    p.add_argument("--revision", help="run: what to deploy (given to the command as $REVISION)")
    p.add_argument("--previous", help="run: the revision to roll back to on failure (default: the site's recorded one)")
    p.add_argument("--dry-run", action="store_true", help="run: print the plan and where each host is registered; "
                                                           "deregister nothing, deploy nothing")
    p.add_argument("--report", metavar="PATH", help="run: write the per-host report as JSON here")
    p.add_argument("--out-dir", default="rollout-out", metavar="DIR",
                   help="run: each batch's SSH config, known_hosts, Capistrano, Ansible and JSON files go under it")
    p.add_argument("--known-hosts", metavar="PATH",
                   help="run: the known_hosts every batch's SSH config uses, kept between runs (default: one "
                        "per batch under --out-dir); the Jenkinsfile passes the workspace's, as its inventory does")
    p.add_argument("--holder", help="who rolls (default: $BUILD_URL, else user@host); abort: put back only what "
                                    "this holder took out")
    p.add_argument("--configured", action="store_true",
                   help="plan: only print true or false, whether the site has a rollout: section (no AWS call)")
    p.set_defaults(func=commands.run_rollout)


def _rollback_parser(sub) -> None:
    p = sub.add_parser("rollback", parents=[CONFIG, ENDPOINT],
                       help="roll a site back to its previous good revision, batch by batch (docs/rollout.md)",
                       description="rollback -c FILE --site S [--to REV] -- DEPLOY COMMAND...: a rollout of the "
                                   "revision the site ran before (revision history), recorded as the site's "
                                   "revision when every host runs it.")
    p.add_argument("--site", required=True, help="the site to roll back")
    p.add_argument("--to", metavar="REVISION", help="this revision (one the site ran) instead of the previous good one")
    p.add_argument("--dry-run", action="store_true", help="print the plan; deregister nothing, deploy nothing")
    p.add_argument("--report", metavar="PATH", help="write the per-host report as JSON here")
    p.add_argument("--out-dir", default="rollout-out", metavar="DIR", help="each batch's files go under it")
    p.add_argument("--known-hosts", metavar="PATH", help="the known_hosts every batch uses (as rollout's)")
    p.add_argument("--holder", help="who rolls (default: $BUILD_URL, else user@host)")
    p.set_defaults(func=commands.run_rollback)


def with_rollout_action(argv: list[str]) -> list[str]:
    """`rollout -c ... -- cmd` means `rollout run -c ... -- cmd`: the action word may be left out."""
    at = next((n for n, word in enumerate(argv) if word not in GLOBAL_FLAGS), None)  # the command word
    if at is None or argv[at] != "rollout" or (at + 1 < len(argv) and argv[at + 1] in ROLLOUT_ACTIONS):
        return argv
    return argv[:at + 1] + ["run"] + argv[at + 1:]


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object a line")
    sub = parser.add_subparsers(dest="command", required=True)
    _inventory_parser(sub)
    _revision_parser(sub)
    _rollback_parser(sub)
    _consume_parser(sub)
    _sandbox_parser(sub)
    _hooks_parser(sub)
    _iam_policy_parser(sub)
    _doctor_parser(sub)
    _fleet_parser(sub)
    _breaker_parser(sub)
    _status_parser(sub)
    _rollout_parser(sub)
    return parser


# Options of the program, not of a command: accepted after the command too (`consume -c x -v`
# was a usage error; issue 24), by moving them in front before argparse sees them.
GLOBAL_FLAGS = frozenset({"-v", "--verbose", "--log-json"})


def hoist_global_flags(argv: list[str]) -> list[str]:
    """argv with -v/--verbose/--log-json moved to the front, up to a `--` (after it, words are data)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in GLOBAL_FLAGS]
    return flags + [a for a in argv[:end] if a not in GLOBAL_FLAGS] + argv[end:]


def parse_words(argv: list[str]) -> argparse.Namespace:
    """The command line as the program reads it: global flags anywhere, `rollout`'s action word
    optional, and rollout's deploy command (every word after `--`) kept out of argparse, which
    would read its flags as ours."""
    words = with_rollout_action(hoist_global_flags(argv))
    command_at = next((n for n, word in enumerate(words) if word not in GLOBAL_FLAGS), len(words))
    takes_command = words[command_at:command_at + 1] in (["rollout"], ["rollback"])
    end = words.index("--") if takes_command and "--" in words else len(words)
    args = build_parser().parse_args(words[:end])
    args.deploy_command = words[end + 1:]
    return args


def main(argv: list[str] | None = None, sandbox: Callable[[argparse.Namespace], int] | None = None) -> int:
    """Run one command. `sandbox` runs the `sandbox` command: the program (helper/program.py)
    plugs it in, so this module never imports the sandbox, which calls main() for its builds."""
    args = parse_words(sys.argv[1:] if argv is None else list(argv))
    configure_logging(verbose=args.verbose, json_lines=args.log_json, daemon=args.command == "consume")
    run = sandbox if args.command == "sandbox" else args.func
    if run is None:
        print(f"{PROG}: the sandbox command runs from {PROG} itself", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HelperError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

