"""moto in server mode on loopback, with this project's extensions loaded in-process.

ThreadedMotoServer serves the in-process moto backends, so anything we patch into those
backends (see lifecycle.py) is what boto3 clients of the server see.
"""

from __future__ import annotations

import requests

# Credentials moto accepts; they never reach a real account because every client
# built for the sandbox is pointed at the loopback endpoint.
SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    """One moto server bound to 127.0.0.1; port 0 picks a free port."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server = None
        self.url = ""

    def start(self) -> str:
        from moto.server import ThreadedMotoServer

        from helper.sandbox import extensions

        extensions.install()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def reset(self) -> None:
        """Forget every resource, as a fresh server would."""
        requests.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()
        from helper.sandbox import extensions

        extensions.reset()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
