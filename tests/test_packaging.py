"""The package as a user gets it (issue 23): the sdist and wheel build, the wheel installs into a
fresh virtual environment without extras, and that install runs: `--version`, `inventory` against
the sandbox the test environment started, and `sandbox up`, which says in one line which extra to
install. Needs the package index CI has (pip installs boto3 and the rest into the new venv)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from helper.sandbox.aws import fleet

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 300
# The fresh venv must see only itself: a PYTHONPATH naming a checkout (with its egg-info) made pip
# think the package was installed already, and it installed no command.
NOT_PASSED = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in NOT_PASSED}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the fresh venv's aws-deploy-helper, the dist directory)."""
    tmp = tmp_path_factory.mktemp("packaging")
    built = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(tmp / "dist"),
                            str(ROOT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=120, env=clean_env(), cwd=tmp)
    (wheel,) = (tmp / "dist").glob("*.whl")
    pip = subprocess.run([str(tmp / "venv" / "bin" / "pip"), "install", "--quiet", str(wheel)],
                         capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=clean_env(), cwd=tmp)
    if pip.returncode != 0 and "No matching distribution" in pip.stderr:
        pytest.skip("no package index to install the wheel's dependencies from (CI has one)")
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert (tmp / "venv" / "bin" / "aws-deploy-helper").is_file(), pip.stdout[-2000:]
    return tmp / "venv" / "bin" / "aws-deploy-helper", tmp / "dist"


def test_the_sdist_and_wheel_carry_the_package_data_and_no_tests(installed):
    _, dist = installed
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "helper/sandbox/jenkins/jobs/deploy.yaml" in names  # the sandbox's deploy job definition
    assert not any(n.startswith("tests/") for n in names)
    (sdist,) = dist.glob("*.tar.gz")
    members = tarfile.open(sdist).getnames()
    assert any(m.endswith("/setup.cfg") for m in members) and any(m.endswith("/helper/cli.py") for m in members)


def test_the_installed_wheel_runs_without_extras(installed):
    helper, _ = installed
    version = subprocess.run([str(helper), "--version"], capture_output=True, text=True, timeout=60, env=clean_env())
    assert version.returncode == 0 and version.stdout.startswith("aws-deploy-helper ")


def test_sandbox_up_without_the_extra_says_which_to_install_in_one_line(installed, tmp_path):
    helper, _ = installed
    up = subprocess.run([str(helper), "sandbox", "up", "--state-dir", str(tmp_path / "sb")],
                        capture_output=True, text=True, timeout=60, env=clean_env())
    assert up.returncode != 0 and up.stdout == ""
    assert up.stderr.strip().splitlines() == [
        "aws-deploy-helper: the sandbox needs moto, which is not installed: pip install 'aws-deploy-helper[sandbox]'"]


def test_the_installed_wheels_inventory_reads_the_sandbox_of_the_test_environment(installed, aws, tmp_path):
    helper, _ = installed
    dns = fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({"sites": {"web": {"elb": dns, "region": "us-east-1"}}}))
    listed = subprocess.run([str(helper), "inventory", "-c", str(config), "--list", "--ssh-config",
                             str(tmp_path / "ssh_config")], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env=clean_env())
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.split()) == 2 and all(a.startswith("web-i-") for a in listed.stdout.split())
