"""The emulator's queue and executors: quiet period, one-build-at-a-time jobs, shell builds in process groups.

One scheduler thread owns the decisions; build threads run `/bin/sh -c command` like a Jenkins `sh` step and
report back through the same Condition, so nothing here polls on a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from helper.sandbox.jenkins.model import Build, Job, QueueItem

# Jenkins forgets a left queue item about five minutes after it started or was cancelled
# (Queue.leftItems is a cache with a 5 minute expiry).
LEFT_ITEM_RETENTION_S = 300.0
# Jenkins sends SIGTERM on abort and escalates when the process outlives this grace.
KILL_GRACE_S = 3.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class Scheduler:
    def __init__(self, executors: int, quiet_period_s: float, workspace_root: Path,
                 left_item_retention_s: float = LEFT_ITEM_RETENTION_S) -> None:
        self.executors = executors
        self.quiet_period_s = quiet_period_s
        self.left_item_retention_s = left_item_retention_s
        self.workspace_root = workspace_root
        self.base_url = ""
        self.hang_builds = False
        self.abort_builds = False
        self.cond = threading.Condition()
        self.jobs: dict[str, Job] = {}
        self.items: dict[int, QueueItem] = {}
        self._next_item_id = 1
        self._running: dict[Build, subprocess.Popen | None] = {}
        self._build_threads: list[threading.Thread] = []
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="jenkins-emulator-queue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self.cond:
            self._stopping = True
            for build in list(self._running):
                self._abort_locked(build, signal.SIGKILL)
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for thread in self._build_threads:
            thread.join(timeout=10)

    # -- requests from the HTTP side (callers hold no lock) ---------------------------------------------

    def enqueue(self, job: Job, params, user: str) -> QueueItem:
        with self.cond:
            for item in self.items.values():
                # Jenkins folds a request into an identical waiting one and answers with that item.
                if item.job is job and item.kind != "LeftItem" and item.params == params:
                    return item
            item = QueueItem(self._next_item_id, job, params, user, _now_ms(),
                             time.monotonic() + self.quiet_period_s)
            self._next_item_id += 1
            self.items[item.id] = item
            self.cond.notify_all()
            return item

    def cancel(self, item: QueueItem) -> bool:
        with self.cond:
            if item.kind == "LeftItem":
                return False
            item.kind, item.why, item.cancelled, item.left_at = "LeftItem", None, True, time.monotonic()
            self.cond.notify_all()
            return True

    def abort(self, build: Build) -> None:
        with self.cond:
            self._abort_locked(build, signal.SIGTERM)

    def waiting_item(self, job: Job) -> QueueItem | None:
        waiting = [i for i in self.items.values() if i.job is job and i.kind != "LeftItem"]
        return waiting[0] if waiting else None

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while self._running or any(i.kind != "LeftItem" for i in self.items.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    # -- scheduling -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        with self.cond:
            while not self._stopping:
                self.cond.wait(self._schedule_locked())

    def _schedule_locked(self) -> float | None:
        """Start what can start; return how long until something changes by itself."""
        now = time.monotonic()
        wake_at = []
        for item in sorted(self.items.values(), key=lambda i: i.id):
            if item.kind == "LeftItem":
                expires = item.left_at + self.left_item_retention_s
                if expires <= now:
                    del self.items[item.id]
                else:
                    wake_at.append(expires)
                continue
            if item.quiet_until > now:
                item.kind, item.why = "WaitingItem", f"In the quiet period. Expires in {item.quiet_until - now:.1f} sec"
                wake_at.append(item.quiet_until)
                continue
            running = [b for b in self._running if b.job is item.job]
            if running and not item.job.concurrent:
                item.kind, item.why = "BlockedItem", f"Build #{running[0].number} is already in progress (ETA: N/A)"
                continue
            if len(self._running) >= self.executors:
                item.kind, item.why = "BuildableItem", "Waiting for next available executor"
                continue
            self._start_locked(item)
        return max(0.0, min(wake_at) - now) if wake_at else None

    def _start_locked(self, item: QueueItem) -> None:
        job = item.job
        build = Build(job, job.next_build_number, item.id, item.params, item.user, _now_ms())
        job.next_build_number += 1
        job.builds[build.number] = build
        item.kind, item.why, item.build, item.left_at = "LeftItem", None, build, time.monotonic()
        self._running[build] = None
        build.console.append(f"Started by user {item.user}\n")
        thread = threading.Thread(target=self._execute, args=(build,), name=f"build-{job.full_name}-{build.number}",
                                  daemon=True)
        self._build_threads = [t for t in self._build_threads if t.is_alive()] + [thread]
        thread.start()

    def _abort_locked(self, build: Build, sig: int) -> None:
        if build not in self._running:
            return
        build.abort_requested = True
        process = self._running[build]
        if process is not None:
            _signal_group(process, sig)
            if sig != signal.SIGKILL:
                timer = threading.Timer(KILL_GRACE_S, _signal_group, (process, signal.SIGKILL))
                timer.daemon = True
                timer.start()
        self.cond.notify_all()

    # -- one build --------------------------------------------------------------------------------------

    def _execute(self, build: Build) -> None:
        started = time.monotonic()
        result = "ABORTED"
        try:
            if self.abort_builds:
                build.console.append("Aborted by the emulator's abort_builds fault\n")
            elif self.hang_builds:
                with self.cond:
                    while not build.abort_requested:
                        self.cond.wait()
            else:
                result = self._run_command(build)
        except OSError as exc:
            build.console.append(f"ERROR: {exc}\n")
            result = "FAILURE"
        finally:
            with self.cond:
                if build.abort_requested:
                    result = "ABORTED"
                build.console.append(f"Finished: {result}\n")
                build.result, build.building = result, False
                build.duration_ms = max(1, int((time.monotonic() - started) * 1000))
                self._running.pop(build, None)
                build.finished.set()
                self.cond.notify_all()

    def _run_command(self, build: Build) -> str:
        job = build.job
        workspace = Path(job.workdir) if job.workdir else self.workspace_root / job.full_name
        workspace.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(build.param_env())
        env.update({"BUILD_NUMBER": str(build.number), "BUILD_ID": str(build.number),
                    "JOB_NAME": job.full_name, "JOB_BASE_NAME": job.name,
                    "BUILD_TAG": f"jenkins-{job.full_name.replace('/', '-')}-{build.number}",
                    "BUILD_URL": build.url(self.base_url), "JOB_URL": job.url(self.base_url),
                    "JENKINS_URL": self.base_url, "WORKSPACE": str(workspace)})
        build.console.append(f"Building in workspace {workspace}\n[{job.name}] $ /bin/sh -c {job.command!r}\n")
        with self.cond:
            if build.abort_requested or self._stopping:
                return "ABORTED"
            process = subprocess.Popen(["/bin/sh", "-c", job.command], cwd=workspace, env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            self._running[build] = process
        with process.stdout:
            for line in iter(process.stdout.readline, b""):
                build.console.append(line.decode("utf-8", "replace"))
        code = process.wait()
        if build.abort_requested:
            return "ABORTED"
        return "SUCCESS" if code == 0 else "FAILURE"


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
