"""Which account and endpoint a client talks to, as plain data (no botocore).

The config parser builds StaticCredentials and the settings build an AccessKey without loading
the AWS SDK; helper/aws/clients.py turns an AccessKey into clients. A site is read by the fields
it has (a Protocol), so the AWS edge never imports the config schema: config imports aws, never
the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Site(Protocol):
    region: str
    profile: str | None
    role_arn: str | None


@dataclass(frozen=True)
class StaticCredentials:
    """Keys written in the file: honoured for compatibility, warned about."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print the secret, even in a traceback
        return f"StaticCredentials(access_key_id={self.access_key_id[:4]}...)"


@dataclass(frozen=True)
class AccessKey:
    """Everything that decides which account and endpoint a client talks to."""

    region: str
    profile: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None
    credentials: StaticCredentials | None = None

    @classmethod
    def for_site(cls, site: Site, endpoint_url: str | None,
                 credentials: StaticCredentials | None, default_profile: str | None) -> "AccessKey":
        return cls(
            region=site.region,
            profile=site.profile or default_profile,
            role_arn=site.role_arn,
            endpoint_url=endpoint_url,
            credentials=credentials,
        )
