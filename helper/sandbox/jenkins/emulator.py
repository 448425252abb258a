"""A Jenkins 2.440 REST API emulator on loopback, for tests and demos where no real Jenkins can run.

It speaks the subset python-jenkins 1.8.3 uses (see ../shared/aws-lifecycle-reference.md): crumbs, basic auth
with passwords or API tokens, jobs in folders, buildWithParameters -> queue item -> build, stop, cancelItem,
consoleText, tree= and depth=. Builds really run: each is `/bin/sh -c <command>` with its parameters in the
environment. Fault switches make it fail the way a real server or network does.

    jenkins = JenkinsEmulator()
    url = jenkins.start()
    jenkins.add_job("deploy/site", parameters=[{"name": "INSTANCE_ID", "default": ""}], command="./deploy.sh")
    ...
    jenkins.stop()
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from helper.sandbox.jenkins.model import Job, ParamDef
from helper.sandbox.jenkins.routes import route
from helper.sandbox.jenkins.scheduler import LEFT_ITEM_RETENTION_S, Scheduler
from helper.sandbox.jenkins.web import App, Server

# JJB parameter types the emulator understands, and the kind each behaves as.
JJB_PARAM_KINDS = {"string": "string", "text": "string", "password": "string", "validating-string": "string",
                   "choice": "choice", "bool": "bool"}


@dataclass(frozen=True)
class BuildRecord:
    """What ran, for test assertions."""

    number: int
    params: dict[str, str]
    result: str | None
    building: bool
    console: str


class JenkinsEmulator:
    def __init__(self, port: int = 0, users: dict[str, str] | None = None,
                 api_tokens: dict[str, str] | None = None, executors: int = 2, quiet_period_s: float = 0.0,
                 left_item_retention_s: float = LEFT_ITEM_RETENTION_S, workspace_root: str | None = None) -> None:
        self._port = port
        self._own_workspace = workspace_root is None
        self._workspace_root = Path(workspace_root or tempfile.mkdtemp(prefix="jenkins-emulator-"))
        self.scheduler = Scheduler(executors, quiet_period_s, self._workspace_root, left_item_retention_s)
        self._app = App(self, dict({"admin": "password"} if users is None else users),
                        dict({"admin": "token"} if api_tokens is None else api_tokens), route)
        self._server: Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._server_lock = threading.Lock()
        self.url = ""  # where it listens
        self._root_url: str | None = None  # what it calls itself, when set

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> str:
        self.up()
        self.scheduler.start()
        return self.url

    def stop(self) -> None:
        self._app.stopping.set()
        self.down()
        self.scheduler.stop()
        if self._own_workspace:
            shutil.rmtree(self._workspace_root, ignore_errors=True)

    def __enter__(self) -> JenkinsEmulator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- jobs and what they ran ---------------------------------------------------------------------------

    def add_job(self, name: str, parameters: list[dict] | tuple = (), command: str = "true",
                concurrent: bool = False, workdir: str | None = None) -> None:
        """`name` may be 'folder/job'; each parameter is {"name", "default"} plus optional "type"
        (string, choice, bool), "choices" and "description"."""
        defs = tuple(ParamDef(p["name"], p.get("type", "string"), p.get("default", ""),
                              tuple(p.get("choices", ())), p.get("description", "")) for p in parameters)
        with self.scheduler.cond:
            self.scheduler.jobs[name.strip("/")] = Job(name.strip("/"), defs, command, concurrent,
                                                       str(workdir) if workdir else None)

    def add_jobs_from_jjb(self, path: str | Path, commands: dict[str, str] | None = None,
                          command: str = "true") -> list[str]:
        """Define the `- job:` entries of Jenkins Job Builder YAML (a file or a directory of them).

        JJB carries no shell the emulator could run safely, so `commands` maps job names to commands,
        with `command` for the rest."""
        path = Path(path)
        files = sorted(path.glob("**/*.y*ml")) if path.is_dir() else [path]
        names = []
        for file in files:
            for entry in yaml.load(file.read_text(), Loader=_JJBLoader) or []:
                if not isinstance(entry, dict) or "job" not in entry:
                    continue
                job = entry["job"]
                if job.get("project-type") == "folder":  # holds jobs (and a library); nothing to build
                    continue
                name = f"{job['folder']}/{job['name']}" if job.get("folder") else job["name"]
                self.add_job(name, [_jjb_param(p) for p in job.get("parameters") or []],
                             (commands or {}).get(name, command), bool(job.get("concurrent", False)))
                names.append(name)
        return names

    def builds(self, job: str) -> list[BuildRecord]:
        with self.scheduler.cond:
            found = self.scheduler.jobs[job].builds.values()
            return [BuildRecord(b.number, b.param_env(), b.result, b.building, "".join(b.console))
                    for b in sorted(found, key=lambda b: b.number)]

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Block until the queue is empty and no build runs; TimeoutError after `timeout_s`."""
        if not self.scheduler.wait_idle(timeout_s):
            raise TimeoutError(f"Jenkins emulator still busy after {timeout_s} s")

    # -- fault switches -----------------------------------------------------------------------------------

    def down(self, for_s: float | None = None, keep=None) -> None:
        """Stop listening (clients get connection refused); `for_s` brings it back up by itself.

        `keep` is a connection left open: the HTTP fault endpoint's own, which still has to answer."""
        with self._server_lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections(keep)
            self._serve_thread.join(timeout=10)
        if for_s is not None:
            timer = threading.Timer(for_s, self._up_unless_stopped)
            timer.daemon = True
            timer.start()

    def up(self) -> None:
        """Listen again, on the same port as before."""
        with self._server_lock:
            if self._server is not None:
                return
            self._server = Server(self._port, self._app)
            self._port = self._server.server_address[1]
            self.url = f"http://127.0.0.1:{self._port}/"
            self.scheduler.base_url = self.root_url
            self._serve_thread = threading.Thread(target=self._server.serve_forever, name="jenkins-emulator-http",
                                                  kwargs={"poll_interval": 0.05}, daemon=True)
            self._serve_thread.start()

    @property
    def root_url(self) -> str:
        """Jenkins's own root URL: in api/json `url`, task, build and Location URLs, and JENKINS_URL."""
        return self._root_url or self.url

    def set_root_url(self, url: str | None) -> None:
        """Answer as a Jenkins whose "Jenkins URL" setting is `url` (None: the URL it listens on).

        A real Jenkins behind a proxy, or reached by another host name than the one configured,
        reports its configured root whatever URL the request came in on."""
        self._root_url = url.rstrip("/") + "/" if url else None
        self.scheduler.base_url = self.root_url

    def _up_unless_stopped(self) -> None:
        if not self._app.stopping.is_set():
            self.up()

    def fail_requests(self, count: int = 0, duration_s: float = 0.0, status: int = 500) -> None:
        """Answer the next `count` requests, or all requests for `duration_s`, with `status`."""
        with self._app.faults_lock:
            faults = self._app.faults
            faults.errors_5xx_left = count
            faults.errors_5xx_until = time.monotonic() + duration_s if duration_s else 0.0
            faults.errors_5xx_status = status

    def slow(self, delay_s: float) -> None:
        """Delay every answer by `delay_s` (0 turns it off)."""
        self._app.faults.slow_s = delay_s

    def hang_builds(self, on: bool = True) -> None:
        """Builds that start from now on never finish until stopped (then ABORTED)."""
        self.scheduler.hang_builds = on

    def abort_builds(self, on: bool = True) -> None:
        """Builds that start from now on end ABORTED without running their command."""
        self.scheduler.abort_builds = on

    def clear_faults(self) -> None:
        self.fail_requests(0)
        self.slow(0.0)
        self.hang_builds(False)
        self.abort_builds(False)
        self.up()

    def set_faults(self, reset: bool = False, down: bool = False, down_for_s: float | None = None,
                   errors_5xx: int = 0, errors_5xx_for_s: float = 0.0, errors_5xx_status: int = 500,
                   slow_s: float | None = None, hang_builds: bool | None = None,
                   abort_builds: bool | None = None) -> None:
        """The JSON body of POST /_emulator/faults, as keyword arguments."""
        if reset:
            self.clear_faults()
        if errors_5xx or errors_5xx_for_s:
            self.fail_requests(int(errors_5xx), float(errors_5xx_for_s), int(errors_5xx_status))
        if slow_s is not None:
            self.slow(float(slow_s))
        if hang_builds is not None:
            self.hang_builds(bool(hang_builds))
        if abort_builds is not None:
            self.abort_builds(bool(abort_builds))
        if down or down_for_s is not None:
            self.down(down_for_s)

    def faults_json(self) -> dict:
        faults = self._app.faults
        return {"down": self._server is None, "errors_5xx": faults.errors_5xx_left,
                "errors_5xx_for_s": max(0.0, faults.errors_5xx_until - time.monotonic()),
                "errors_5xx_status": faults.errors_5xx_status, "slow_s": faults.slow_s,
                "hang_builds": self.scheduler.hang_builds, "abort_builds": self.scheduler.abort_builds}


class _JJBLoader(yaml.SafeLoader):
    """SafeLoader that reads JJB's own tags (!include, !include-raw: ...) as plain values."""


_JJBLoader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node)
                                 if isinstance(node, yaml.ScalarNode) else None)


def _jjb_param(entry: dict) -> dict:
    (kind, spec), = entry.items()
    if kind not in JJB_PARAM_KINDS:
        raise ValueError(f"JJB parameter type {kind!r} is not emulated (known: {sorted(JJB_PARAM_KINDS)})")
    out = {"name": spec["name"], "type": JJB_PARAM_KINDS[kind], "description": spec.get("description", "")}
    if kind == "choice":
        out["choices"] = [str(c) for c in spec.get("choices", [])]
    else:
        out["default"] = spec.get("default", False if kind == "bool" else "")
    return out
