"""The emulator's HTTP face: Jenkins 2.440's security (basic auth, API tokens, session-bound crumbs),
its URL space for jobs in folders, builds and the queue, and the fault switches that sit in front of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from helper.sandbox.jenkins.model import FOLDER, TREE_DEPTH, Build, Job
from helper.sandbox.jenkins.tree import apply_tree, parse_tree

# The LTS the project deploys with; python-jenkins get_version() reads it from X-Jenkins.
JENKINS_VERSION = "2.440.3"
CRUMB_FIELD = "Jenkins-Crumb"
NO_CRUMB = "No valid crumb was included in the request"
JSON_TYPE = "application/json;charset=utf-8"


@dataclass
class Faults:
    """Switches that make the emulator misbehave the way a real Jenkins or network does."""

    errors_5xx_left: int = 0
    errors_5xx_until: float = 0.0  # time.monotonic()
    errors_5xx_status: int = 500
    slow_s: float = 0.0


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, app: App) -> None:
        self.app = app
        self.connections: set = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)

    def drop_connections(self, keep=None) -> None:
        """Close kept-alive client connections too, so a 'down' server refuses everything."""
        with self.connections_lock:
            for conn in list(self.connections - {keep}):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class App:
    """Everything a request handler needs; owned by JenkinsEmulator."""

    def __init__(self, emulator, users: dict[str, str], api_tokens: dict[str, str], route) -> None:
        self.emulator = emulator
        self.route = route  # jenkins_routes.route: (handler, app, method, user) -> None
        self.scheduler = emulator.scheduler
        self.users = users
        self.api_tokens = api_tokens
        self.faults = Faults()
        self.faults_lock = threading.Lock()
        self.stopping = threading.Event()
        self.sessions: dict[str, str] = {}  # JSESSIONID -> user who logged in with a password
        self._secret = secrets.token_bytes(16)

    def crumb_for(self, user: str, session_id: str) -> str:
        return hmac.new(self._secret, f"{user}:{session_id}".encode(), hashlib.sha256).hexdigest()

    def take_5xx(self) -> int | None:
        with self.faults_lock:
            if self.faults.errors_5xx_left > 0:
                self.faults.errors_5xx_left -= 1
                return self.faults.errors_5xx_status
            if time.monotonic() < self.faults.errors_5xx_until:
                return self.faults.errors_5xx_status
        return None


class HttpError(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- plumbing ---------------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        app = self.server.app
        split = urlsplit(self.path)
        self.segments = [unquote(s) for s in split.path.split("/") if s]
        self.query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.extra_headers: dict[str, str] = {}
        if method == "POST" and "form-urlencoded" in (self.headers.get("Content-Type") or ""):
            form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            self.query = {**form, **self.query}
        try:
            if self.segments[:1] == ["_emulator"]:
                return self._emulator_control(method, body)
            if app.faults.slow_s:
                app.stopping.wait(app.faults.slow_s)
            status = app.take_5xx()
            if status is not None:
                raise HttpError(status, "Emulated server error")
            user = self._authenticate(app)
            if user is None and self.segments[:1] != ["whoAmI"]:
                raise HttpError(403, "Authentication required")
            if method == "POST" and self.auth_kind == "password":
                self._check_crumb(app, user)
            self.user = user
            app.route(self, app, method, user)
        except HttpError as exc:
            self.send_text(exc.status, exc.message or self.responses.get(exc.status, ("",))[0],
                           reason=exc.message or None)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _authenticate(self, app: App) -> str | None:
        self.auth_kind = "anonymous"
        header = self.headers.get("Authorization") or ""
        cookie = SimpleCookie(self.headers.get("Cookie") or "")
        self.session_id = cookie["JSESSIONID"].value if "JSESSIONID" in cookie else ""
        if header.lower().startswith("basic "):
            try:
                user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                raise HttpError(401, "Invalid authorization header") from None
            if user in app.api_tokens and hmac.compare_digest(app.api_tokens[user], secret):
                self.auth_kind = "token"  # stateless: no session, no crumb needed
                return user
            if user in app.users and hmac.compare_digest(app.users[user], secret):
                self.auth_kind = "password"
                if app.sessions.get(self.session_id) != user:
                    self.session_id = secrets.token_hex(16)
                    app.sessions[self.session_id] = user
                    self.extra_headers["Set-Cookie"] = f"JSESSIONID={self.session_id}; Path=/; HttpOnly"
                return user
            raise HttpError(401, f"Invalid password/token for user: {user}")
        if self.session_id in app.sessions:
            self.auth_kind = "password"
            return app.sessions[self.session_id]
        return None

    def _check_crumb(self, app: App, user: str) -> None:
        sent = self.headers.get(CRUMB_FIELD) or self.query.get(CRUMB_FIELD) or ""
        if not hmac.compare_digest(sent, app.crumb_for(user, self.session_id)):
            raise HttpError(403, NO_CRUMB)

    def _emulator_control(self, method: str, body: bytes) -> None:
        emulator = self.server.app.emulator
        if self.segments[1:] != ["faults"]:
            raise HttpError(404, "Not Found")
        down = {}
        if method == "POST":
            try:
                request = json.loads(body or b"{}")
                # Going down closes this very connection, so it happens after the answer.
                down = {k: request.pop(k) for k in ("down", "down_for_s") if k in request}
                emulator.set_faults(**request)
            except (TypeError, ValueError, AttributeError) as exc:
                raise HttpError(400, f"Bad fault request: {exc}") from None
        if down.get("down") or down.get("down_for_s") is not None:
            # Close the listener before answering, so the client's next request is refused;
            # this connection answers and then closes.
            emulator.down(down.get("down_for_s"), keep=self.connection)
            self.close_connection = True
            self.extra_headers["Connection"] = "close"
        self.send_json(emulator.faults_json())

    # -- answers ----------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None,
              reason: str | None = None) -> None:
        self.send_response(status, reason)
        self.send_header("X-Jenkins", JENKINS_VERSION)
        self.send_header("X-Hudson", "1.395")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**self.extra_headers, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_text(self, status: int, text: str, headers: dict | None = None, reason: str | None = None) -> None:
        self._send(status, text.encode(), "text/plain;charset=utf-8", headers, reason)

    def send_html(self, text: str) -> None:
        self._send(200, f"<html><body>{text}</body></html>".encode(), "text/html;charset=utf-8")

    def send_json(self, value) -> None:
        self._send(200, json.dumps(value).encode(), JSON_TYPE)

    def send_api(self, render) -> None:
        """Answer `render(depth)` with Jenkins' depth= and tree= applied."""
        tree = self.query.get("tree")
        if tree:
            try:
                fields = parse_tree(tree)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from None
            return self.send_json(apply_tree(render(TREE_DEPTH), fields))
        try:
            depth = int(self.query.get("depth") or 0)
        except ValueError:
            raise HttpError(400, "depth must be a number") from None
        self.send_json(render(depth))


def folder_json(app: App, full_name: str, depth: int) -> dict:
    base = app.emulator.root_url
    name = full_name.rsplit("/", 1)[-1]
    return {"_class": FOLDER, "actions": [{}], "description": None, "displayName": name,
            "fullDisplayName": full_name.replace("/", " » "), "fullName": full_name, "name": name,
            "url": base + "".join(f"job/{p}/" for p in full_name.split("/")),
            "jobs": children_json(app, full_name, depth), "primaryView": None, "views": []}


def children_json(app: App, folder: str, depth: int) -> list[dict]:
    """Items directly inside `folder` ('' is the root): jobs and implicit folders."""
    base = app.emulator.root_url
    prefix = f"{folder}/" if folder else ""
    out, seen = [], set()
    for full_name, job in sorted(app.scheduler.jobs.items()):
        if not full_name.startswith(prefix):
            continue
        child = full_name[len(prefix):].split("/", 1)[0]
        if child in seen:
            continue
        seen.add(child)
        if "/" in full_name[len(prefix):]:
            nested = prefix + child
            out.append(folder_json(app, nested, depth - 1) if depth >= 1 else
                       {"_class": FOLDER, "name": child, "url": base + "".join(
                           f"job/{p}/" for p in nested.split("/"))})
        else:
            out.append(job.to_json(base, depth - 1, None) if depth >= 1 else job.ref(base))
    return out


def render_build(app: App, build: Build):
    return lambda depth: build.to_json(app.emulator.root_url, depth)


def render_job(app: App, job: Job):
    def render(depth):
        item = app.scheduler.waiting_item(job)
        return job.to_json(app.emulator.root_url, depth, item.to_json(app.emulator.root_url) if item else None)

    return render
