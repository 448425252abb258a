"""moto in server mode on loopback, with this project's extensions loaded in-process.

The server serves the in-process moto backends, so anything we patch into those backends
(see lifecycle.py) is what boto3 clients of the server see. A thin WSGI layer in front of
moto answers the sandbox's own control endpoint (control.py), so a consumer in
another process can be tested against throttling or duplicate deliveries:

    GET|POST|DELETE <url>/_sandbox/faults
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Iterable

import requests

# Credentials moto accepts; they never reach a real account because every client
# built for the sandbox is pointed at the loopback endpoint.
SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

CONTROL_PATH = "/_sandbox/faults"
# Hosts whose backend the server remembers (a run uses a few dozen: service x region).
REMEMBERED_HOSTS = 512


class SandboxControlApp:
    """WSGI middleware: the control endpoint, everything else to moto."""

    def __init__(self, moto_app: Callable[..., Iterable[bytes]]) -> None:
        self._moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") != CONTROL_PATH:
            return self._moto_app(environ, start_response)
        from werkzeug.wrappers import Request

        from helper.sandbox.aws import control

        request = Request(environ)
        status, document = 200, None
        try:
            if request.method == "GET":
                document = control.state()
            elif request.method == "POST":
                document = control.apply(json.loads(request.get_data(as_text=True) or "{}"))
            elif request.method == "DELETE":
                document = control.clear()
            else:
                status, document = 405, {"error": f"{request.method} not allowed; use GET, POST or DELETE"}
        except ValueError as error:  # includes json.JSONDecodeError
            status, document = 400, {"error": str(error)}
        body = json.dumps(document).encode()
        reason = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed"}[status]
        start_response(
            f"{status} {reason}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def _dispatcher(create_backend_app: Callable[..., Any]) -> Any:
    """moto's DomainDispatcherApplication, remembering which backend serves each host.

    moto answers "which backend is this host?" by listing its package directory and trying
    each service's URL patterns, for every request and under one lock that all requests share.
    In bench/lifecycle.py --burst that made the server, not the calls, the bottleneck: most of
    its threads' samples waited on that lock. The answer depends only on the host and the
    installed moto, so it is kept: for the first REMEMBERED_HOSTS hosts, because the host comes
    from the request, and a client sending a new one each time must not grow the memo forever.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class RememberingDispatcher(DomainDispatcherApplication):
        def __init__(self, create_app: Callable[..., Any]) -> None:
            super().__init__(create_app)
            self._backend_by_host: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:  # called under self.lock
            if host in self._backend_by_host:
                return self._backend_by_host[host]
            backend = super().get_backend_for_host(host)
            if len(self._backend_by_host) < REMEMBERED_HOSTS:
                self._backend_by_host[host] = backend
            return backend

    return RememberingDispatcher(create_backend_app)


class MotoServer:
    """One moto server bound to 127.0.0.1; port 0 picks a free port. Its sandbox clock runs
    `time_scale` times faster than real time (60.0: a 30 s hook timeout passes in 0.5 s)."""

    def __init__(self, port: int = 0, time_scale: float = 1.0) -> None:
        self._port = port
        self._time_scale = time_scale
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        from helper.sandbox.aws import extensions

        extensions.install(self._time_scale)
        app = SandboxControlApp(_dispatcher(create_backend_app))
        self._server = make_server("127.0.0.1", self._port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def reset(self) -> None:
        """Forget every resource and every sandbox switch, as a fresh server would."""
        from helper.sandbox.aws import extensions

        # Before as well as after: no pending action may fire into the backends being reset.
        extensions.reset()
        requests.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()
        extensions.reset()

    def stop(self) -> None:
        from helper.sandbox.aws import extensions

        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        extensions.shutdown()
