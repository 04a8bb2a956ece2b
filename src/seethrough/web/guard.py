"""Who may talk to the explorer: a small ASGI middleware in front of every request.

The explorer binds 127.0.0.1, but a page from any web site runs in the same browser as the
user. Three checks keep such a page out:

* **Host** (DNS rebinding): ``evil.example`` can be made to resolve to 127.0.0.1, so its page
  would be "same-origin" with the explorer and read every answer, uploads included. The
  browser still sends ``Host: evil.example``, so only loopback names (and the ``--host`` the
  user chose) are served. An IP literal can never be rebound, so with a wildcard bind
  (``0.0.0.0``) any IP literal and this machine's own names are served too. The port is not
  checked: it cannot be forged by a page, and an SSH tunnel may forward another local port.
* **Origin / Sec-Fetch-Site** (cross-site requests): a page elsewhere can send requests it
  cannot read (a form POST, an ``<img>``), which would still start computations or store
  uploads. A request whose ``Origin`` is not the explorer's own, or that the browser marks
  as cross-site, is refused before anything runs.
* **Token** (everything that changes state): POST/PUT/PATCH/DELETE must carry the token the
  server generated at start-up and wrote into its own page (``X-Seethrough-Token``). A page
  elsewhere cannot read that page, so it cannot learn the token; old browsers that send
  neither Origin nor Sec-Fetch-Site are covered by this check.

A refusal is a 403 with a one-line JSON ``detail`` saying which check failed.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
import socket
from typing import Any, Awaitable, Callable

TOKEN_HEADER = "x-seethrough-token"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


def new_token() -> str:
    """A fresh secret for one server start (URL-safe, 256 bits).

    >>> a, b = new_token(), new_token()
    >>> len(a) >= 43 and a != b
    True
    """
    return secrets.token_urlsafe(32)


def host_name(header: str) -> str:
    """The name part of a ``Host`` header, lower-cased: ``[::1]:80`` → ``::1``.

    >>> host_name("LocalHost:8765"), host_name("[::1]:8765"), host_name("127.0.0.1")
    ('localhost', '::1', '127.0.0.1')
    """
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    name, _, port = text.rpartition(":")
    return name if name and port.isdigit() else text


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(bind_host: str) -> Callable[[str], bool]:
    """A test for the ``Host`` names an explorer bound to ``bind_host`` serves.

    >>> ok = host_allowed("127.0.0.1")
    >>> ok("localhost"), ok("::1"), ok("evil.example"), ok("192.168.1.5")
    (True, True, False, False)
    >>> host_allowed("0.0.0.0")("192.168.1.5")  # a wildcard bind: IP literals cannot be rebound
    True
    """
    names = set(LOOPBACK)
    wildcard = bind_host.strip().lower() in WILDCARDS
    if wildcard:
        names |= {n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n}
    else:
        names.add(host_name(bind_host) if not _is_ip(bind_host) else bind_host.strip().lower())
    return lambda name: name in names or (wildcard and _is_ip(name))


def refusal(request: Scope, token: str, allowed: Callable[[str], bool]) -> str | None:
    """Why ``request`` (an ASGI http scope) is refused, or ``None`` if it may proceed.

    >>> ok = host_allowed("127.0.0.1")
    >>> scope = lambda method, **h: {"method": method, "path": "/api/info",
    ...                              "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in h.items()]}
    >>> refusal(scope("GET", host="127.0.0.1:8765"), "t", ok) is None
    True
    >>> refusal(scope("GET", host="evil.example:8765"), "t", ok)
    "Host 'evil.example:8765' is not this explorer's address (a DNS rebinding page?); open the URL the explorer printed"
    >>> refusal(scope("POST", host="127.0.0.1:8765", origin="http://127.0.0.1:8765"), "t", ok)
    'a request that changes state needs the X-Seethrough-Token header of the page the explorer served'
    """
    headers: dict[str, str] = {}
    for key, value in request.get("headers", []):
        headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    host = headers.get("host")
    if host is None:
        return "the request has no Host header"
    if not allowed(host_name(host)):
        return f"Host {host[:80]!r} is not this explorer's address (a DNS rebinding page?); open the URL the explorer printed"
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"http://{host}".lower():
        return f"cross-origin request from {origin[:80]!r} refused: only the explorer's own page may call it"
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site") and request.get("path", "").startswith("/api/"):
        return f"the browser marks this request as {site}: only the explorer's own page may call the API"
    if request.get("method", "GET").upper() not in SAFE_METHODS:
        sent = headers.get(TOKEN_HEADER)
        if sent is None or not secrets.compare_digest(sent.encode(), token.encode()):
            return "a request that changes state needs the X-Seethrough-Token header of the page the explorer served"
    return None


class Guard:
    """ASGI middleware: ``app`` behind :func:`refusal`; a refused request is a 403 and never
    reaches it (``FastAPI.add_middleware(Guard, token=..., bind_host=...)``).

    >>> async def hello(scope, receive, send): pass
    >>> callable(Guard(hello, token=new_token()))
    True
    """

    def __init__(self, app: ASGIApp, token: str, bind_host: str = "127.0.0.1") -> None:
        self.app, self.token, self.allowed = app, token, host_allowed(bind_host)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        why = refusal(scope, self.token, self.allowed) if scope["type"] in ("http", "websocket") else None
        if why is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            body = json.dumps({"detail": why}).encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
