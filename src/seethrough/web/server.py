"""Serving the explorer: a uvicorn server on a socket we bind ourselves, so ``port=0`` can
print the port the system picked."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class Running:
    """A server started in a background thread; :meth:`stop` ends it."""

    url: str
    server: object
    thread: threading.Thread
    on_stop: Callable[[], None] | None = None

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.on_stop is not None:
            self.on_stop()
            self.on_stop = None


def check_port(port: object) -> int:
    """``port`` if it is a TCP port number (0 = any free one), else a one-line ValueError.

    >>> check_port(8765)
    8765
    >>> check_port(99999)
    Traceback (most recent call last):
    ...
    ValueError: the port must be a whole number from 0 to 65535 (0 picks a free one), got 99999
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"the port must be a whole number from 0 to 65535 (0 picks a free one), got {port!r}")
    return port


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; ``port=0`` lets the system pick a free port.

    >>> s = bind(); s.getsockname()[1] > 0
    True
    >>> s.close()
    """
    check_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError, UnicodeError) as e:
        sock.close()
        why = getattr(e, "strerror", None) or str(e)
        raise ValueError(f"cannot listen on {host}:{port}: {why}; check --host, or pick another --port (0 = any free one)") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def _server(app):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2))


def start(app, host: str = "127.0.0.1", port: int = 0, on_stop: Callable[[], None] | None = None) -> Running:
    """Serve ``app`` in a background thread (tests, screenshots); returns once it accepts.
    ``on_stop`` runs after the server has stopped (``explore`` restores the model's modes)."""
    sock = bind(host, port)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="seethrough-explorer")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("the explorer server did not start")
    return Running(url_of(sock), server, thread, on_stop)


def serve(app, host: str = "127.0.0.1", port: int = 0, open_browser: bool = True) -> None:
    """Serve ``app`` in the foreground until Ctrl-C, printing its URL."""
    sock = bind(host, port)
    url = url_of(sock)
    if host not in LOCAL_HOSTS:
        print(f"warning: listening on {host}: the explorer has no authentication; anyone who can reach "
              "this address can use it and upload images")
    print(f"seethrough explorer: {url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    _server(app).run(sockets=[sock])
