"""contrib/systemd: the unit verifies as written once the documented install step made its ExecStart
path, and the credential it loads is the one the consumer reads (issue 24)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helper.config.credentials import read_credentials

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "aws-deploy-helper-consumer.service"
EXEC = "/opt/aws-deploy-helper/bin/aws-deploy-helper"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_verifies_once_the_documented_venv_makes_its_execstart(tmp_path):
    text = UNIT.read_text()
    assert f"ExecStart={EXEC} " in text and "python3 -m venv /opt/aws-deploy-helper" in text
    # The documented step makes EXEC; here the same program stands at a path of the test's own.
    program = tmp_path / "venv" / "bin" / "aws-deploy-helper"
    program.parent.mkdir(parents=True)
    os.symlink(shutil.which("aws-deploy-helper") or str(ROOT / ".venv" / "bin" / "aws-deploy-helper"), program)
    unit = tmp_path / "aws-deploy-helper-consumer.service"
    unit.write_text(text.replace(EXEC, str(program)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    missing = tmp_path / "missing.service"
    missing.write_text(text.replace(EXEC, str(tmp_path / "not-installed")))
    assert subprocess.run(["systemd-analyze", "verify", str(missing)], capture_output=True,
                          timeout=60).returncode != 0, "verify does fail when the program is missing"


def test_the_credential_the_unit_loads_is_what_the_consumer_reads_and_the_environment_wins(tmp_path):
    assert "LoadCredential=jenkins:/etc/aws-deploy-helper/jenkins" in UNIT.read_text()
    credentials = tmp_path / "credentials"  # what systemd makes: $CREDENTIALS_DIRECTORY/jenkins, 0400
    credentials.mkdir()
    (credentials / "jenkins").write_text("deployer:11aa22bb\n")
    os.chmod(credentials / "jenkins", 0o400)
    other = tmp_path / "file"
    other.write_text("someone:else\n")
    os.chmod(other, 0o600)
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert read_credentials(env, str(other)) == ("deployer", "11aa22bb"), "systemd's credential before the file"
    assert read_credentials({**env, "JENKINS_USER": "u", "JENKINS_API_TOKEN": "t"}, str(other)) == ("u", "t")
    assert read_credentials({"CREDENTIALS_DIRECTORY": str(tmp_path / "none")}, str(other)) == ("someone", "else")


def test_the_unit_waits_for_ready_and_watches_the_receive_loop():
    """Issue 23: systemd tells a hung consumer from a working one (tests/consumer/test_sd_notify.py
    shows the pings stop when the loop stalls); the watchdog outlasts one long poll, at most 20 s."""
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
             if "=" in line and not line.startswith("#")}
    assert lines["Type"] == "notify" and lines["NotifyAccess"] == "main"
    assert int(lines["WatchdogSec"]) > 20
