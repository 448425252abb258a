"""The package's shape: side effects at the edges, one home for each rule, no circle of imports.

The settings and `revision get` (which every scale-up build runs) must not load botocore; no
module outside helper/aws/ reads inside a botocore error; each rule below is written in one
module and imported everywhere else; no module imports itself round a circle, and none is
named like a standard-library module (`python helper/cli.py` once imported helper/queue.py as
`queue`).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.units import HELPER_BIN

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "helper"
# The interpreter and the helper start in well under a second; this only stops a hang.
CLI_TIMEOUT_S = 60

# Imported before anything else by every Python started with it on PYTHONPATH: any import of
# botocore (or boto3, which imports it) fails loudly, naming the importer in the traceback.
BLOCK_BOTOCORE = """\
import sys


class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("botocore", "boto3"):
            raise ImportError(f"{name} imported by a command that must not load the AWS SDK")
        return None


sys.meta_path.insert(0, _Blocked())
"""


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module under helper/."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def source_files(skip: tuple[str, ...] = ()) -> list[Path]:
    return [path for path in modules().values()
            if not any(path.relative_to(ROOT).as_posix().startswith(prefix) for prefix in skip)]


# --- edges stay at the edges ---------------------------------------------------------------------


@pytest.fixture
def no_botocore_env(tmp_path) -> dict[str, str]:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_BOTOCORE)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}


def test_the_blocker_really_blocks_botocore(no_botocore_env):
    """The control: without it the tests below would pass for a blocker that never ran."""
    done = subprocess.run([sys.executable, "-c", "import botocore"], env=no_botocore_env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert done.returncode != 0 and "must not load the AWS SDK" in done.stderr


def test_importing_the_settings_loads_no_botocore():
    done = subprocess.run([sys.executable, "-c", "import helper.settings, sys; assert 'botocore' not in sys.modules"],
                          cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def recorded_site(tmp_path) -> Path:
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({"path": {"revision_dir": str(tmp_path / "revisions")},
                                      "sites": {"web": {"asg": "web-asg", "region": "us-east-1"}}}))
    (tmp_path / "revisions").mkdir()
    (tmp_path / "revisions" / "web.revision").write_text("v1.4.2\n")
    return config


@pytest.mark.parametrize("command", [
    ["revision", "get", "--site", "web"],
    ["revision", "resolve", "--site", "web", "--scale-up", "--revision="],
], ids=["revision get", "revision resolve --scale-up"])
def test_what_a_scale_up_build_runs_loads_no_botocore(no_botocore_env, recorded_site, command):
    done = subprocess.run([str(HELPER_BIN), *command, "-c", str(recorded_site)], env=no_botocore_env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert (done.returncode, done.stdout, done.stderr) == (0, "v1.4.2\n", "")


def test_no_module_outside_the_aws_edge_reads_a_botocore_error():
    reads = re.compile(r"\.response\s*(\[|\.get\()")
    offenders = [f"{path.relative_to(ROOT)}:{number}" for path in source_files(skip=("helper/aws/",))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if reads.search(line)]
    assert offenders == [], "read it through helper/aws/errors.py"


def test_no_module_outside_the_aws_edge_imports_botocores_exceptions():
    """Clients are translated (helper/aws/errors.py): a failed call raises AwsError, which the
    seams catch; one translator instead of a hand-written except per call site (issue 20)."""
    imports = re.compile(r"^\s*(from botocore\.exceptions import|import botocore\.exceptions)", re.MULTILINE)
    offenders = [path.relative_to(ROOT).as_posix() for path in source_files(skip=("helper/aws/", "helper/sandbox/"))
                 if imports.search(path.read_text())]
    assert offenders == []


# --- one home for each rule ---------------------------------------------------------------------------

# rule -> (how its own spelling looks in source, the one module that may spell it). The sandbox
# stands in for AWS and Jenkins and keeps their own numbers and names: not scanned.
RULES = {
    "the instance-id pattern": (r"i-\[0-9a-f\]", "helper/aws/names.py"),
    "the program name": (r"[\"']aws-deploy-helper", "helper/__init__.py"),
    "the hook role name": (r"\}-hook[\"']", "helper/config/lifecycle.py"),
    "the queue account and name": (r"urlparse\(", "helper/aws/names.py"),
    "AWS's default heartbeat timeout": (r"[\"']HeartbeatTimeout[\"'],|HEARTBEAT_TIMEOUT_S\s*=\s*3600",
                                        "helper/aws/hook_timeouts.py"),
    "the heartbeat interval": (r"heartbeat_fraction\b(?!:)", "helper/config/lifecycle.py"),
    "the global timeout": (r"GLOBAL_TIMEOUT_FACTOR\s*\*|100 \* heartbeat", "helper/aws/hook_timeouts.py"),
    # issue 20's second pass: each of these was written two to four times
    "Auto Scaling's 50 names a call": (r"=\s*50\b", "helper/aws/names.py"),
    "a printable line": (r"isprintable\(\) else", "helper/text.py"),
    "the endpoint URL fallback": (r"environ\.get\([\"']AWS_ENDPOINT_URL", "helper/settings.py"),
    "our group tags' format": (r"[\"']PropagateAtLaunch[\"']:\s*False|[\"']auto-scaling-group[\"']",
                               "helper/aws/group_tags.py"),
    "a site's groups": (r"route\.site for route|route\.site\s*==\s*site|\(None, r(oute)?\.site\)",
                        "helper/config/lifecycle.py"),
    "the group:instance:token reference": (r"rpartition\([\"']:[\"']\)|:\{self\.instance_id\}:", "helper/consumer/action.py"),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_is_written_in_one_module(rule):
    pattern, home = RULES[rule]
    spelled = {path.relative_to(ROOT).as_posix() for path in source_files(skip=("helper/sandbox/",))
               if re.search(pattern, path.read_text())}
    assert spelled == {home}, f"{rule}: import it from {home}"


def test_one_jenkins_client_serves_the_consumer_and_doctor():
    imports = {name for name, path in modules().items() if not name.startswith("helper.sandbox")
               and re.search(r"^\s*(import jenkins|from jenkins import)", path.read_text(), re.MULTILINE)}
    assert imports == {"helper.consumer.jenkins_client"}


def test_one_bounded_reader_reads_the_files_the_helper_did_not_write():
    reads = re.compile(r"os\.read\(|fdopen\(.*[\"']rb[\"']|with open\(|open\(.*encoding=")
    readers = {path.relative_to(ROOT).as_posix() for path in source_files(skip=("helper/sandbox/",))
               if reads.search(path.read_text())}
    assert readers == {"helper/files/read.py"}


# --- no circle of imports, no module named like the standard library --------------------------------


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The helper modules a file imports, at its top or inside a function (a lazy import that
    dodges a circle is still one)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module, and every self-import (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1 or node in graph[node]:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_circle_of_imports():
    known = modules()
    graph = {name: imports_of(path, known) - {name} for name, path in known.items()}
    assert cycles(graph) == []


# --- folders import one way -----------------------------------------------------------------------

# folder (or top-level module) -> what it may import besides itself; `helper` is the package's
# __init__ (PROG, the version), which any part may use. Read down the table: the disk and AWS
# edges at the bottom, then the config, the settings, the flows, the operator commands, the
# command line, and the program with the sandbox on top. A new import that points up the
# table is a back-tie: move the shared piece down instead (issue 20).
BASE = {"helper", "errors", "text"}
FOLDER_IMPORTS = {
    "helper": set(),
    "errors": set(),
    "text": set(),
    "urls": {"errors"},
    "logfmt": {"helper"},
    "files": BASE,
    "aws": BASE,
    "config": BASE | {"urls", "files", "aws"},
    "settings": BASE | {"files", "aws", "config"},
    "inventory": BASE | {"files", "aws", "config", "settings"},
    "deploys": BASE | {"files", "aws", "config"},
    "breaker": BASE | {"urls", "aws", "config", "deploys"},
    "consumer": BASE | {"urls", "files", "aws", "config", "deploys", "breaker"},
    "setup": BASE | {"urls", "logfmt", "files", "aws", "config", "settings", "inventory", "deploys", "breaker",
                     "consumer"},
    "commands": BASE | {"aws", "settings", "inventory", "deploys", "breaker", "consumer", "setup"},
    "cli": BASE | {"logfmt", "commands", "setup"},
    "sandbox": BASE | {"files", "settings", "deploys", "setup", "cli"},
    "program": {"cli", "sandbox"},
    "__main__": {"program"},
}


def folder_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "helper"


def folder_back_ties(graph: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    """Each import from one folder into another that the table does not allow."""
    found = []
    for name in sorted(graph):
        for dep in sorted(graph[name]):
            here, there = folder_of(name), folder_of(dep)
            if here != there and there not in allowed.get(here, set()):
                found.append(f"{name} -> {dep} ({here} may import {sorted(allowed.get(here, ())) or 'nothing'})")
    return found


def test_the_folder_table_finds_a_back_tie():
    graph = {"helper.aws.clients": {"helper.config.document"}, "helper.config.document": {"helper.aws.names"}}
    assert folder_back_ties(graph, FOLDER_IMPORTS) == [
        "helper.aws.clients -> helper.config.document (aws may import ['errors', 'helper', 'text'])"]


def test_the_folder_table_is_one_way():
    """No two folders may import each other, even if no module circle exists today."""
    both = [(a, b) for a in FOLDER_IMPORTS for b in FOLDER_IMPORTS[a] if a in FOLDER_IMPORTS.get(b, ())]
    assert both == []


def test_every_folder_is_in_the_table_and_imports_only_down_it():
    known = modules()
    assert {folder_of(name) for name in known} <= set(FOLDER_IMPORTS)
    graph = {name: imports_of(path, known) - {name} for name, path in known.items()}
    assert folder_back_ties(graph, FOLDER_IMPORTS) == []


def test_no_module_or_package_is_named_like_a_standard_library_module():
    named = {part for name in modules() for part in name.split(".")[1:]}
    assert sorted(named & set(sys.stdlib_module_names)) == []


# --- small modules ---------------------------------------------------------------------------------

MAX_MODULE_LINES = 350


def test_no_module_is_over_350_lines():
    """One job a module (issue 20): past this, a module has grown a second job; split it by job."""
    long = {path.relative_to(ROOT).as_posix(): n for path in modules().values()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


# --- tests/ mirrors helper/ --------------------------------------------------------------------------

# Whole-system tests, across folders: the mission, real SSH, the Jenkins side, the readers, the docs,
# the package's own shape and import cost, the benchmarks' harness.
SYSTEM_TESTS = {"test_mission", "test_real_ssh", "test_jenkins_side", "test_jenkins_library", "test_operator_view", "test_packaging", "test_readers", "test_capapp_docs",
                "test_doc_commands", "test_doc_walkthrough", "test_edges", "test_import_cost", "test_logfmt", "test_bench_replicas",
                "test_parallel_groups"}


def test_each_test_module_sits_in_the_folder_of_the_package_it_tests():
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    misplaced = []
    for test in sorted((ROOT / "tests").rglob("test_*.py")):
        folder = test.parent.relative_to(ROOT / "tests").as_posix()
        if (folder == "." and test.stem not in SYSTEM_TESTS) or (folder != "." and folder not in packages):
            misplaced.append(test.relative_to(ROOT).as_posix())
    assert misplaced == [], "tests/<package>/test_<module>.py, as helper/<package>/ (issue 20)"
