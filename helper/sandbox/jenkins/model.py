"""What the Jenkins emulator knows (jobs, builds, queue items) and how Jenkins 2.440 renders it as JSON.

Rendering takes `depth` as Jenkins does: at depth 0 nested builds are references ({_class, number, url});
`tree=` queries render at TREE_DEPTH and are filtered afterwards.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import quote

# Deep enough for every tree= the project and python-jenkins ask for (job -> builds -> actions -> parameters).
TREE_DEPTH = 2

PARAM_CLASSES = {
    # kind: (definition class, value class)
    "string": ("hudson.model.StringParameterDefinition", "hudson.model.StringParameterValue"),
    "choice": ("hudson.model.ChoiceParameterDefinition", "hudson.model.StringParameterValue"),
    "bool": ("hudson.model.BooleanParameterDefinition", "hudson.model.BooleanParameterValue"),
}
FREESTYLE_JOB = "hudson.model.FreeStyleProject"
FREESTYLE_BUILD = "hudson.model.FreeStyleBuild"
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"
RESULT_COLORS = {None: "notbuilt", "SUCCESS": "blue", "UNSTABLE": "yellow", "FAILURE": "red",
                 "ABORTED": "aborted", "NOT_BUILT": "notbuilt"}


@dataclass(frozen=True)
class ParamDef:
    name: str
    kind: str = "string"
    default: object = ""
    choices: tuple[str, ...] = ()
    description: str = ""

    def value_of(self, raw: str | None):
        """The typed value Jenkins stores for a submitted string (None: use the default)."""
        if raw is None:
            if self.kind == "choice" and self.choices:
                return self.choices[0]
            return bool(self.default) if self.kind == "bool" else str(self.default)
        if self.kind == "bool":
            return raw.strip().lower() in ("true", "on", "yes", "1")
        if self.kind == "choice" and self.choices and raw not in self.choices:
            raise ValueError(f"Illegal choice for parameter {self.name}: {raw}")
        return raw

    def to_json(self) -> dict:
        definition_class, value_class = PARAM_CLASSES[self.kind]
        out = {"_class": definition_class,
               "defaultParameterValue": {"_class": value_class, "name": self.name,
                                         "value": self.value_of(None)},
               "description": self.description, "name": self.name,
               "type": definition_class.rsplit(".", 1)[1]}
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        return out


@dataclass(eq=False)
class Build:
    job: Job
    number: int
    queue_id: int
    params: list[tuple[ParamDef, object]]
    user: str
    timestamp_ms: int
    result: str | None = None
    building: bool = True
    duration_ms: int = 0
    console: list[str] = field(default_factory=list)
    abort_requested: bool = False
    finished: threading.Event = field(default_factory=threading.Event)

    def url(self, base: str) -> str:
        return f"{self.job.url(base)}{self.number}/"

    def param_env(self) -> dict[str, str]:
        return {d.name: (str(v).lower() if isinstance(v, bool) else str(v)) for d, v in self.params}

    def ref(self, base: str) -> dict:
        return {"_class": FREESTYLE_BUILD, "number": self.number, "url": self.url(base)}

    def to_json(self, base: str, depth: int = 0) -> dict:
        actions = []
        if self.params:
            actions.append({"_class": "hudson.model.ParametersAction", "parameters": [
                {"_class": PARAM_CLASSES[d.kind][1], "name": d.name, "value": v} for d, v in self.params]})
        actions.append({"_class": "hudson.model.CauseAction", "causes": [
            {"_class": "hudson.model.Cause$UserIdCause", "shortDescription": f"Started by user {self.user}",
             "userId": self.user, "userName": self.user}]})
        actions.append({})  # Jenkins lists actions without exported fields as {}; clients must skip them.
        return {"_class": FREESTYLE_BUILD, "actions": actions, "artifacts": [], "building": self.building,
                "description": None, "displayName": f"#{self.number}", "duration": self.duration_ms,
                "estimatedDuration": -1, "executor": None,
                "fullDisplayName": f"{self.job.full_name.replace('/', ' » ')} #{self.number}",
                "id": str(self.number), "keepLog": False, "number": self.number, "queueId": self.queue_id,
                "result": self.result, "timestamp": self.timestamp_ms, "url": self.url(base),
                "builtOn": "", "changeSet": {"_class": "hudson.scm.EmptyChangeLogSet", "items": [],
                                             "kind": None}, "culprits": []}


@dataclass(eq=False)
class Job:
    full_name: str
    parameters: tuple[ParamDef, ...] = ()
    command: str = "true"
    concurrent: bool = False
    workdir: str | None = None
    next_build_number: int = 1
    builds: dict[int, Build] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.full_name.rsplit("/", 1)[-1]

    def url(self, base: str) -> str:
        return base + "".join(f"job/{quote(part)}/" for part in self.full_name.split("/"))

    def permalink(self, name: str) -> Build | None:
        """lastBuild & co., as they resolve in build URLs."""
        newest_first = sorted(self.builds.values(), key=lambda b: -b.number)
        done = [b for b in newest_first if not b.building]
        wanted = {
            "lastBuild": newest_first,
            "firstBuild": newest_first[::-1],
            "lastCompletedBuild": done,
            "lastSuccessfulBuild": [b for b in done if b.result == "SUCCESS"],
            "lastStableBuild": [b for b in done if b.result == "SUCCESS"],
            "lastFailedBuild": [b for b in done if b.result == "FAILURE"],
            "lastUnsuccessfulBuild": [b for b in done if b.result != "SUCCESS"],
            "lastUnstableBuild": [b for b in done if b.result == "UNSTABLE"],
        }.get(name, [])
        return wanted[0] if wanted else None

    def color(self) -> str:
        last = self.permalink("lastCompletedBuild")
        color = RESULT_COLORS[last.result if last else None]
        building = any(b.building for b in self.builds.values())
        return color + "_anime" if building else color

    def ref(self, base: str) -> dict:
        return {"_class": FREESTYLE_JOB, "name": self.name, "url": self.url(base), "color": self.color()}

    def to_json(self, base: str, depth: int, queue_item: dict | None) -> dict:
        def build_view(build):
            if build is None:
                return None
            return build.to_json(base, depth - 1) if depth >= 1 else build.ref(base)

        builds = [build_view(b) for b in sorted(self.builds.values(), key=lambda b: -b.number)]
        props = []
        if self.parameters:
            props.append({"_class": "hudson.model.ParametersDefinitionProperty",
                          "parameterDefinitions": [p.to_json() for p in self.parameters]})
        out = {"_class": FREESTYLE_JOB, "actions": list(props) + [{}], "description": "",
               "displayName": self.name, "fullDisplayName": self.full_name.replace("/", " » "),
               "fullName": self.full_name, "name": self.name, "url": self.url(base), "buildable": True,
               "builds": builds, "allBuilds": builds, "color": self.color(), "healthReport": [],
               "inQueue": queue_item is not None, "keepDependencies": False,
               "nextBuildNumber": self.next_build_number, "property": props, "queueItem": queue_item,
               "concurrentBuild": self.concurrent, "disabled": False, "upstreamProjects": [],
               "downstreamProjects": []}
        for link in ("firstBuild", "lastBuild", "lastCompletedBuild", "lastFailedBuild",
                     "lastStableBuild", "lastSuccessfulBuild", "lastUnstableBuild", "lastUnsuccessfulBuild"):
            out[link] = build_view(self.permalink(link))
        return out


@dataclass(eq=False)
class QueueItem:
    id: int
    job: Job
    params: list[tuple[ParamDef, object]]
    user: str
    in_queue_since_ms: int
    quiet_until: float  # time.monotonic()
    kind: str = "WaitingItem"  # WaitingItem, BlockedItem, BuildableItem, LeftItem
    why: str | None = "In the quiet period."
    cancelled: bool = False
    build: Build | None = None
    left_at: float | None = None  # time.monotonic() when it started or was cancelled

    def to_json(self, base: str) -> dict:
        out = {"_class": f"hudson.model.Queue${self.kind}", "actions": [], "blocked": self.kind == "BlockedItem",
               "buildable": self.kind == "BuildableItem", "id": self.id,
               "inQueueSince": self.in_queue_since_ms,
               "params": "".join(f"\n{d.name}={v}" for d, v in self.params), "stuck": False,
               "task": {"_class": FREESTYLE_JOB, "name": self.job.name, "url": self.job.url(base),
                        "color": self.job.color()},
               "url": f"queue/item/{self.id}/", "why": self.why}
        if self.params:
            out["actions"].append({"_class": "hudson.model.ParametersAction", "parameters": [
                {"_class": PARAM_CLASSES[d.kind][1], "name": d.name, "value": v} for d, v in self.params]})
        out["actions"].append({"_class": "hudson.model.CauseAction", "causes": [
            {"_class": "hudson.model.Cause$UserIdCause", "shortDescription": f"Started by user {self.user}",
             "userId": self.user, "userName": self.user}]})
        if self.kind == "BuildableItem":
            out["pending"] = False
        if self.kind == "LeftItem":
            out["cancelled"] = self.cancelled
            out["executable"] = self.build.ref(base) if self.build else None
        return out
