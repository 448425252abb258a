"""URL dispatch for the Jenkins emulator: which path does what, with Jenkins' status codes."""

from __future__ import annotations

from helper.sandbox.jenkins.model import Job
from helper.sandbox.jenkins.web import (
    CRUMB_FIELD,
    App,
    Handler,
    HttpError,
    children_json,
    folder_json,
    render_build,
    render_job,
)

API = ["api", "json"]


def route(h: Handler, app: App, method: str, user: str | None) -> None:
    seg = h.segments
    base = app.emulator.root_url
    if seg[:1] == ["whoAmI"]:
        return h.send_json({"_class": "hudson.security.WhoAmI", "anonymous": user is None,
                            "authenticated": user is not None, "authorities": [],
                            "name": user or "anonymous", "details": None})
    if seg == ["me", *API] or seg == ["user", user, *API]:
        return h.send_json({"_class": "hudson.model.User", "absoluteUrl": f"{base}user/{user}",
                            "description": None, "fullName": user, "id": user, "property": []})
    if seg == ["crumbIssuer", *API]:
        return h.send_json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                            "crumb": app.crumb_for(user, h.session_id), "crumbRequestField": CRUMB_FIELD})
    if seg == [] or seg == API:
        if not seg:
            return h.send_html("Dashboard [Jenkins]")
        with app.scheduler.cond:
            return h.send_api(lambda depth: {
                "_class": "hudson.model.Hudson", "mode": "NORMAL", "nodeDescription": "the emulated built-in node",
                "nodeName": "", "numExecutors": app.scheduler.executors, "quietingDown": False,
                "url": base, "useCrumbs": True, "useSecurity": True, "views": [],
                "jobs": children_json(app, "", depth)})
    if seg[:1] == ["queue"]:
        return _queue(h, app, method, seg[1:])
    if seg[:1] == ["job"]:
        return _job(h, app, method, seg)
    raise HttpError(404, "Not Found")


def _queue(h: Handler, app: App, method: str, rest: list[str]) -> None:
    scheduler = app.scheduler
    base = app.emulator.root_url
    if rest == API:
        with scheduler.cond:
            items = [i.to_json(base) for i in sorted(scheduler.items.values(), key=lambda i: i.id)
                     if i.kind != "LeftItem"]
        return h.send_api(lambda depth: {"_class": "hudson.model.Queue", "discoverableItems": [], "items": items})
    if rest == ["cancelItem"]:
        _require_post(method)
        item = scheduler.items.get(_int(h.query.get("id"), 404))
        if item is None:
            raise HttpError(404, f"Provided id ({h.query.get('id')}) not found")
        if not scheduler.cancel(item):
            raise HttpError(422, f"Item for id ({item.id}) is not cancellable")
        return h._send(204, b"", "text/plain", None)
    if len(rest) >= 2 and rest[0] == "item":
        item = scheduler.items.get(_int(rest[1], 404))
        if item is None:
            raise HttpError(404, "Not Found")
        if rest[2:] == API:
            with scheduler.cond:
                view = item.to_json(base)
            return h.send_api(lambda depth: view)
        if rest[2:] == []:
            return h.send_html(f"Queue item {item.id}")
    raise HttpError(404, "Not Found")


def _job(h: Handler, app: App, method: str, seg: list[str]) -> None:
    names = []
    while len(seg) >= 2 and seg[0] == "job":
        names.append(seg[1])
        seg = seg[2:]
    full_name = "/".join(names)
    scheduler = app.scheduler
    job = scheduler.jobs.get(full_name)
    if job is None:
        if not any(name.startswith(full_name + "/") for name in scheduler.jobs):
            raise HttpError(404, "Not Found")
        if seg == API:
            with scheduler.cond:
                return h.send_api(lambda depth: folder_json(app, full_name, depth))
        if seg == []:
            return h.send_html(f"Folder {full_name}")
        raise HttpError(404, "Not Found")
    if seg == []:
        return h.send_html(f"Project {full_name}")
    if seg == API:
        with scheduler.cond:
            return h.send_api(render_job(app, job))
    if seg in (["build"], ["buildWithParameters"]):
        _require_post(method)
        return _trigger(h, app, job, with_params=seg == ["buildWithParameters"])
    with scheduler.cond:
        build = job.permalink(seg[0]) if not seg[0].isdigit() else job.builds.get(int(seg[0]))
    if build is None:
        raise HttpError(404, "Not Found")
    rest = seg[1:]
    if rest == []:
        return h.send_html(f"Build {full_name} #{build.number}")
    if rest == API:
        with scheduler.cond:
            return h.send_api(render_build(app, build))
    if rest == ["consoleText"]:
        with scheduler.cond:
            text = "".join(build.console)
        return h.send_text(200, text)
    if rest == ["stop"]:
        _require_post(method)
        scheduler.abort(build)
        return h._send(302, b"", "text/plain", {"Location": build.url(app.emulator.root_url)})
    raise HttpError(404, "Not Found")


def _trigger(h: Handler, app: App, job: Job, with_params: bool) -> None:
    if not with_params and job.parameters:
        # Jenkins answers a POST to /build on a parameterized job without a submitted form with 400.
        raise HttpError(400, "This page expects a form submission")
    if with_params and not job.parameters:
        raise HttpError(500, "This build is not parameterized!")
    try:
        params = [(d, d.value_of(h.query.get(d.name))) for d in job.parameters]
    except ValueError as exc:
        raise HttpError(500, str(exc)) from None
    item = app.scheduler.enqueue(job, params, h.user)
    h._send(201, b"", "text/plain", {"Location": f"{app.emulator.root_url}queue/item/{item.id}/"})


def _require_post(method: str) -> None:
    if method != "POST":
        raise HttpError(405, "This URL requires POST")


def _int(text: str | None, status: int) -> int:
    try:
        return int(text or "")
    except ValueError:
        raise HttpError(status, "Not Found") from None
