"""An HTTP relay in front of the emulator's STS that keeps a copy of every exchange, so the
demo can show what the server sent to STS and what STS answered."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@attrs.frozen
class Exchange:
    """One request relayed to STS and its answer."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    reason: str
    answer: bytes


class StsTap:
    """Listens on a loopback port and relays each request to ``upstream`` (``http://h:p``).

    :attr:`exchanges` lists what went through, oldest first. :meth:`close` stops it.
    """

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.exchanges: list[Exchange] = []
        lock = threading.Lock()
        exchanges = self.exchanges

        class Relay(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(*target, timeout=10)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    answer = response.read()
                    content_type = response.getheader("Content-Type", "text/xml")
                    status, reason = response.status, response.reason
                finally:
                    upstream.close()
                with lock:
                    exchanges.append(
                        Exchange(self.command, self.path, headers, body, status, reason, answer)
                    )
                self.send_response(status, reason)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _relay

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the demo prints what matters."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
