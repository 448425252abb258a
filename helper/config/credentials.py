"""Jenkins credentials: JENKINS_USER and JENKINS_API_TOKEN, or a `user:token` file; never the config.

helper/settings.py passes the environment in (it is the one module that reads it); the file is
read like every other file the helper did not write (helper/files/read.py): a regular file,
bounded, and a FIFO named as the credentials file is refused at once instead of hanging.
"""

from __future__ import annotations

import errno
import os
from typing import Mapping

from helper.errors import ConfigError
from helper.files.read import TooLarge, Unreadable, read_regular

# As ssh treats a private key: any permission for group or others (read, or write, which lets
# them swap the token) means the token may already be someone else's.
CREDENTIALS_FORBIDDEN_MODE = 0o077
# The name of the systemd credential (LoadCredential=jenkins:...) the consumer's unit passes.
SYSTEMD_CREDENTIAL = "jenkins"
# One `user:token` line is well under this; a larger "credentials file" is the wrong file.
CREDENTIALS_MAX_BYTES = 4096


def _private(credentials_file: str):
    def check(info: os.stat_result) -> None:
        mode = info.st_mode & 0o777
        if mode & CREDENTIALS_FORBIDDEN_MODE:
            raise ConfigError(
                f"{credentials_file}: Jenkins credentials file is open to group or others "
                f"(mode {mode:04o}); run: chmod 600 {credentials_file}")
    return check


def _read_file(credentials_file: str) -> str:
    try:
        data = read_regular(os.path.expanduser(credentials_file), CREDENTIALS_MAX_BYTES,
                            check=_private(credentials_file))
    except TooLarge:
        raise ConfigError(f"{credentials_file}: expected one line user:api-token, "
                          f"found more than {CREDENTIALS_MAX_BYTES} bytes") from None
    except Unreadable as exc:
        raise ConfigError(f"{credentials_file}: cannot read Jenkins credentials: {exc}") from None
    if data is None:
        raise ConfigError(f"{credentials_file}: cannot read Jenkins credentials: "
                          f"{os.strerror(errno.ENOENT)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{credentials_file}: Jenkins credentials are not UTF-8 text") from None


def _from_file(path: str) -> tuple[str, str]:
    user, sep, token = _read_file(path).strip().partition(":")
    if sep and user and token:
        return user, token
    raise ConfigError(f"{path}: expected one line user:api-token")


def read_credentials(environ: Mapping[str, str], credentials_file: str | None) -> tuple[str, str]:
    """(user, token), from the first of these that is there:

    1. JENKINS_USER and JENKINS_API_TOKEN in the environment (both);
    2. systemd's credential `jenkins` ($CREDENTIALS_DIRECTORY/jenkins, from the unit's
       `LoadCredential=jenkins:/etc/aws-deploy-helper/jenkins`): systemd reads the root-owned 0600
       file and hands the service a private copy, which a DynamicUser= service could not read
       itself (issue 24);
    3. lifecycle.jenkins.credentials_file.
    Each file holds one line `user:token` and is open to no one else.
    """
    user, token = environ.get("JENKINS_USER"), environ.get("JENKINS_API_TOKEN")
    if user and token:
        return user, token
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory and os.path.lexists(os.path.join(directory, SYSTEMD_CREDENTIAL)):
        return _from_file(os.path.join(directory, SYSTEMD_CREDENTIAL))
    if credentials_file:
        return _from_file(credentials_file)
    raise ConfigError("Jenkins credentials missing: set JENKINS_USER and JENKINS_API_TOKEN "
                      "or lifecycle.jenkins.credentials_file")
