"""A Jenkins credentials file others can read is refused, as ssh refuses a 0644 key: by the
reader itself, by `consume` (one line, exit 2) and in `doctor`'s findings (issue 9, item 22)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from helper.cli import main
from helper.config.credentials import read_credentials
from helper.errors import ConfigError

TOKEN = "s3cret-token-9f1c"


def credentials(tmp_path, mode: int) -> str:
    path = tmp_path / "jenkins-credentials"
    path.write_text(f"deployer:{TOKEN}\n")
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o620], ids=oct)
def test_credentials_file_open_to_group_or_others_is_refused_with_the_chmod_fix(tmp_path, mode):
    path = credentials(tmp_path, mode)
    with pytest.raises(ConfigError) as error:
        read_credentials({}, path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert f"{mode & 0o777:04o}" in message and f"chmod 600 {path}" in message
    assert TOKEN not in message


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=oct)
def test_credentials_file_only_its_owner_can_read_is_used(tmp_path, mode):
    assert read_credentials({}, credentials(tmp_path, mode)) == ("deployer", TOKEN)


def test_environment_credentials_never_open_the_file(tmp_path):
    environ = {"JENKINS_USER": "env-user", "JENKINS_API_TOKEN": "env-token"}
    assert read_credentials(environ, credentials(tmp_path, 0o644)) == ("env-user", "env-token")


def test_a_fifo_as_the_credentials_file_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "jenkins-credentials"
    os.mkfifo(fifo, 0o600)
    # In a subprocess with a deadline: a reader that opened the FIFO would wait for a writer forever.
    code = f"from helper.config.credentials import read_credentials; read_credentials({{}}, {str(fifo)!r})"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("reading the credentials waited on a FIFO")
    assert done.stderr.strip().splitlines()[-1] == (
        f"helper.errors.ConfigError: {fifo}: cannot read Jenkins credentials: is a FIFO, not a regular file")


def _config(tmp_path, aws, credentials_file: str) -> str:
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump({"sites": {"web": {"asg": "web-asg"}}, "lifecycle": {
        "queue_url": f"{aws}/123456789012/hooks", "region": "us-east-1", "groups": {"web-asg": "web"},
        "jenkins": {"url": "http://127.0.0.1:9/", "job": "deploy", "credentials_file": credentials_file}}}))
    return str(path)


@pytest.fixture
def no_env_credentials(monkeypatch):
    monkeypatch.delenv("JENKINS_USER", raising=False)
    monkeypatch.delenv("JENKINS_API_TOKEN", raising=False)


def test_consume_refuses_an_open_credentials_file_in_one_line(aws, tmp_path, no_env_credentials):
    path = credentials(tmp_path, 0o644)
    # A subprocess with a deadline: a consumer that accepted the file would start and wait on Jenkins.
    done = subprocess.run([sys.executable, "-m", "helper", "consume", "-c", _config(tmp_path, aws, path), "--once"],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"chmod 600 {path}" in done.stderr and TOKEN not in done.stderr


def test_doctor_says_the_credentials_file_is_open_to_others(aws, tmp_path, capsys, no_env_credentials):
    path = credentials(tmp_path, 0o644)
    code = main(["doctor", "-c", _config(tmp_path, aws, path)])
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("FAIL jenkins ")]
    assert code == 1 and f"chmod 600 {path}" in line and TOKEN not in out


# --- Jenkins credentials ------------------------------------------------------------------------------

ENV = {"JENKINS_USER": "env-user", "JENKINS_API_TOKEN": "env-token"}


def credentials_file(tmp_path, text: str) -> str:
    path = tmp_path / "jenkins-credentials"
    path.write_text(text)
    path.chmod(0o600)  # as the file must be (see the permission tests above)
    return str(path)


@pytest.mark.parametrize("environ, text, expected", [
    pytest.param(ENV, "file-user:file-token\n", ("env-user", "env-token"), id="environment wins"),
    pytest.param({}, "file-user:file-token\n", ("file-user", "file-token"), id="file"),
    pytest.param({"JENKINS_USER": "env-user"}, "file-user:file-token", ("file-user", "file-token"),
                 id="half an environment falls back to the file"),
    pytest.param({}, "  deployer:a:b\n\n", ("deployer", "a:b"), id="token may hold a colon"),
])
def test_read_credentials(tmp_path, environ, text, expected):
    assert read_credentials(environ, credentials_file(tmp_path, text)) == expected


def test_environment_alone_needs_no_file():
    assert read_credentials(ENV, None) == ("env-user", "env-token")


@pytest.mark.parametrize("text", ["s3cret-token\n", "", ":s3cret-token", "deployer:", "\n"])
def test_malformed_credentials_file_is_a_config_error_naming_the_file(tmp_path, text):
    path = credentials_file(tmp_path, text)
    with pytest.raises(ConfigError, match="expected one line user:api-token") as error:
        read_credentials({}, path)
    assert str(error.value).startswith(f"{path}:")
    assert "s3cret" not in str(error.value)  # never echo what may be a token


def test_missing_credentials_file_is_a_config_error_naming_the_file(tmp_path):
    path = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match="cannot read Jenkins credentials") as error:
        read_credentials({}, path)
    assert str(error.value).startswith(f"{path}:")


def test_no_credentials_at_all_is_a_config_error():
    with pytest.raises(ConfigError, match="JENKINS_USER and JENKINS_API_TOKEN"):
        read_credentials({}, None)
