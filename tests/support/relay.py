"""A TCP relay for tests: put it in front of PostgreSQL or Redis, stop it to make the
store vanish (every relayed connection dropped, new ones refused), start it again on the
same port to bring it back."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

from tests.support.moto_server import free_port


class TcpRelay:
    """Forwards every connection made to ``127.0.0.1:port`` to ``target``.

    :meth:`stop` closes the listening socket and every relayed connection (the port then
    refuses connections); :meth:`start` listens on the same port again.
    """

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._stopping = threading.Event()
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener, self._stopping), daemon=True)
        thread.start()
        self._threads = [thread]

    def _accept(self, listener: socket.socket, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if stopping.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            thread = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            thread.start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        a.setblocking(True)
        b.setblocking(True)
        with selectors.DefaultSelector() as selector:
            selector.register(a, selectors.EVENT_READ, b)
            selector.register(b, selectors.EVENT_READ, a)
            try:
                while True:
                    for key, _ in selector.select(timeout=0.2):
                        source = key.fileobj
                        assert isinstance(source, socket.socket)
                        data = source.recv(65536)
                        if not data:
                            return
                        key.data.sendall(data)
                    if self._stopping.is_set():
                        return
            except OSError:
                return
            finally:
                self._discard(a, b)

    def _discard(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._sockets.discard(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for thread in self._threads:
            thread.join(5)
        with self._lock:
            live = list(self._sockets)
        self._discard(*live)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if not self._sockets:
                    return
            time.sleep(0.01)
