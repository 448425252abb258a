"""Build AWS clients for a site: credentials, region, endpoint and retry policy.

This module is the only place that decides how we talk to AWS. Credentials come from
the boto3/botocore chain (environment, shared files, instance role), a named profile,
or a role assumed per site; keys in the config file are still honoured for
compatibility. We build clients on botocore sessions (what boto3 wraps): the inventory
needs only clients, and skipping boto3's resource layer and s3transfer imports saves a
tenth of a second of CPU per run.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import botocore.loaders
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import DataNotFoundError

from helper import PROG
from helper.aws.access import AccessKey, StaticCredentials  # noqa: F401 (AccessKey: callers import it here too)
from helper.aws.errors import AWS_FAILURES, Translated, translate, translated

# botocore's "standard" retry mode backs off with jitter on Throttling,
# RequestLimitExceeded and 5xx. Eight attempts ride out a scale-out burst without
# making a genuinely broken endpoint hang a pipeline stage for minutes.
RETRY_MAX_ATTEMPTS = 8
# A describe call over thousands of instances can take several seconds on a busy account.
READ_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 10
# Long enough for one inventory run; short enough that a leaked token is soon useless.
ASSUMED_ROLE_DURATION_S = 900

BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": RETRY_MAX_ATTEMPTS},
    read_timeout=READ_TIMEOUT_S,
    connect_timeout=CONNECT_TIMEOUT_S,
    user_agent_extra=PROG,
)

# The consumer retries throttled heartbeats and completions itself, between other
# housekeeping; botocore's own retries stay short so one call never blocks the loop long.
CONSUMER_BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": 3},
    read_timeout=30,
    connect_timeout=CONNECT_TIMEOUT_S,
    user_agent_extra=f"{PROG}-consumer",
)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelUse:
    """What a caller uses of one service's model: the operations it calls, and of some shapes
    the members it reads (shape name -> members). Hashable, so a loader can be shared by key."""

    operations: frozenset[str]
    shapes_read: tuple[tuple[str, frozenset[str]], ...] = ()


# service name -> what is used of it; services not named are served whole.
ModelsUsed = Mapping[str, ModelUse]


class _JsonFiles(botocore.loaders.JSONFileLoader):
    """botocore's model files read into plain dicts.

    botocore asks json for OrderedDicts, which costs EC2's model 48 ms of CPU where plain
    dicts (ordered too, since Python 3.7) cost 17: a tenth of a 1,000-instance inventory.
    """

    _OPENERS = ((".json", open), (".json.gz", gzip.open))

    def load_file(self, file_path):
        for extension, opener in self._OPENERS:
            path = file_path + extension
            if os.path.isfile(path):
                with opener(path, "rb") as file:
                    return json.loads(file.read().decode("utf-8"))
        return None


class _ServiceNames(Sequence):
    """The services botocore has data for, as botocore's Loader.list_available_services lists them,
    asked `in` by looking in one service's directory only.

    botocore checks each model it loads against that list, and building it lists every one of
    its ~400 service directories, twice per client (the model and the endpoint rules): 17 ms of
    a 1,000-instance inventory's fixed cost (docs/benchmarks.md). The whole list is built only
    when something reads it, as botocore's error for an unknown service does.
    """

    def __init__(self, loader: botocore.loaders.Loader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name
        self._names: list[str] | None = None

    def __contains__(self, name: object) -> bool:
        # Only a directory's own name can be listed: "ec2/../s3" would find s3's directory.
        if not isinstance(name, str) or name in ("", ".", "..") or any(sep and sep in name for sep in (os.sep, os.altsep)):
            return False
        try:
            return bool(self._loader.list_api_versions(name, self._type_name))
        except DataNotFoundError:
            return False

    def _all(self) -> list[str]:
        if self._names is None:
            self._names = botocore.loaders.Loader.list_available_services(self._loader, self._type_name)
        return self._names

    def __getitem__(self, index):
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())


class _ReadOnlyLoader(botocore.loaders.Loader):
    """botocore's model loader, serving models cut down to what the caller uses.

    - Shapes keep only the members read. botocore parses every member its model names: for
      DescribeInstances some sixty fields per instance and their nested lists, where the
      inventory reads a dozen. A member the model leaves out is skipped unread, so the parse
      costs a fraction (docs/benchmarks.md).
    - Operations keep only those called: a client gets a method per operation, and EC2 has
      seven hundred, half of its client's creation time.

    The cached model is never changed: the cut one is a copy, made once, sharing every shape
    but the trimmed ones. A name the model lacks means botocore renamed something: a shortcut
    must never stop a deploy, so the loader warns once and serves that service's full model.
    """

    def __init__(self, models_used: ModelsUsed, **kwargs) -> None:
        super().__init__(file_loader=_JsonFiles(), **kwargs)
        self._models_used = models_used
        self._cut: dict[tuple, dict] = {}

    def list_available_services(self, type_name):
        return _ServiceNames(self, type_name)

    def load_service_model(self, service_name, type_name, api_version=None):
        model = super().load_service_model(service_name, type_name, api_version=api_version)
        use = self._models_used.get(service_name) if type_name == "service-2" else None
        if use is None:
            return model
        key = (service_name, api_version)
        if key not in self._cut:
            try:
                self._cut[key] = _cut(service_name, model, use)
            except KeyError as exc:
                log.warning("event=model_cut_skipped service=%s reason=%r fallback=full_model", service_name,
                            exc.args[0] if exc.args else str(exc))
                self._cut[key] = model  # the full model: slower to parse, never wrong
        return self._cut[key]


def _cut(service_name: str, model: dict, use: ModelUse) -> dict:
    missing_ops = use.operations - model["operations"].keys()
    if missing_ops:
        raise KeyError(f"{service_name} model: no operation(s) {sorted(missing_ops)}")
    shapes = dict(model["shapes"])
    for name, members in use.shapes_read:
        if name not in shapes:
            raise KeyError(f"{service_name} model: no shape {name}")
        missing = members - shapes[name]["members"].keys()
        if missing:
            raise KeyError(f"{service_name} model: shape {name} has no member(s) {sorted(missing)}")
        shapes[name] = {**shapes[name], "members": {k: v for k, v in shapes[name]["members"].items()
                                                    if k in members}}
    operations = {name: op for name, op in model["operations"].items() if name in use.operations}
    return {**model, "operations": operations, "shapes": shapes}


# One loader per (models used, data path) for the whole process: sites in several regions or
# accounts then share one copy of each model (EC2's is 16 MB parsed) instead of one per session,
# and load it once. A Loader only reads files and caches what it read, so threads may share it
# (two racing on a first load both read it, and one copy is kept).
_LOADERS: dict[tuple, _ReadOnlyLoader] = {}
_LOADERS_LOCK = threading.Lock()


def _data_loader(session: botocore.session.Session, models_used: ModelsUsed) -> _ReadOnlyLoader:
    # What botocore.loaders.create_loader does with AWS_DATA_PATH, keeping its extra paths.
    data_path = session.get_config_variable("data_path")
    extra = tuple(path for path in (data_path or "").split(os.pathsep) if path)
    key = (extra, tuple(sorted(models_used.items())))
    with _LOADERS_LOCK:
        if key not in _LOADERS:
            _LOADERS[key] = (_ReadOnlyLoader(models_used, extra_search_paths=list(extra)) if extra
                             else _ReadOnlyLoader(models_used))
        return _LOADERS[key]


class AwsClients:
    """The clients one (account, region) needs, created on first use.

    botocore sessions are not thread-safe, so each worker thread builds its own
    AwsClients; the clients themselves may then be shared.
    """

    def __init__(self, key: AccessKey, session: botocore.session.Session | None = None,
                 boto_config: BotoConfig = BOTO_CONFIG, models_used: ModelsUsed | None = None) -> None:
        self.key = key
        self._session = session
        self._boto_config = boto_config
        # Only for clients whose callers use nothing else of those models (the inventory).
        self._models_used = models_used

    def _new_session(self, profile: str | None = None) -> botocore.session.Session:
        session = botocore.session.Session(profile=profile)
        # We never read a timestamp from a response, and parsing them with dateutil
        # costs about a sixth of the CPU of describing 1,000 instances: keep the text.
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
        if self._models_used:
            session.register_component("data_loader", _data_loader(session, self._models_used))
        return session

    def _base_session(self) -> botocore.session.Session:
        creds = self.key.credentials
        session = self._new_session(profile=self.key.profile if creds is None else None)
        if creds is not None:
            session.set_credentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
        return session

    @cached_property
    def session(self) -> botocore.session.Session:
        if self._session is not None:
            return self._session
        base = self._base_session()
        if self.key.role_arn is None:
            return base
        sts = base.create_client("sts", region_name=self.key.region,
                                 endpoint_url=self.key.endpoint_url, config=BOTO_CONFIG)
        assumed = sts.assume_role(
            RoleArn=self.key.role_arn,
            RoleSessionName=PROG,
            DurationSeconds=ASSUMED_ROLE_DURATION_S,
        )["Credentials"]
        session = self._new_session()
        session.set_credentials(assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"])
        return session

    def client(self, service: str):
        """A client for the service, translated: its failures raise AwsError (helper/aws/errors.py).
        On a cut-down model, an operation the cut lacks is served by the full model (errors.Translated)."""
        if not (self._models_used and service in self._models_used):
            return translated(self.raw_client(service))
        whole = lambda: AwsClients(self.key, session=None, boto_config=self._boto_config).raw_client(service)  # noqa: E731
        return Translated(self.raw_client(service), full=whole)

    def raw_client(self, service: str):
        try:
            session = self.session
        except AWS_FAILURES as exc:  # assuming the site's role failed
            raise translate(exc, "assume_role") from exc
        return session.create_client(
            service, region_name=self.key.region, endpoint_url=self.key.endpoint_url, config=self._boto_config
        )

    @cached_property
    def ec2(self):
        return self.client("ec2")

    @cached_property
    def elb(self):
        return self.client("elb")

    @cached_property
    def elbv2(self):
        return self.client("elbv2")

    @cached_property
    def autoscaling(self):
        return self.client("autoscaling")
