"""A local stand-in for Vertex AI's REST API: records each request, answers a CustomJob.

Only the cloud control plane is faked, at the HTTP boundary: the real
``google-cloud-aiplatform`` client (REST transport) builds and sends the request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class VertexStub:
    url: str
    requests: list[Recorded] = field(default_factory=list)


@contextmanager
def vertex_stub(status: int = 200) -> Iterator[VertexStub]:
    """Serve on a free localhost port; answer ``customJobs.create`` like Vertex AI does."""
    stub = VertexStub(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            stub.requests.append(Recorded("POST", self.path, dict(self.headers), body))
            if status != 200:
                answer = {"error": {"code": status, "message": "stub refused", "status": "X"}}
            else:
                parent = self.path.split("/v1/", 1)[-1].rsplit("/customJobs", 1)[0]
                answer = {
                    **body,
                    "name": f"{parent}/customJobs/1234567890",
                    "state": "JOB_STATE_PENDING",
                    "createTime": "2026-11-24T06:00:00Z",
                }
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
