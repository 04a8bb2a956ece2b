"""The explorer's own page and its static files, served from memory.

The files are read once from the package: a request can only name one of them (no path is
ever joined from a URL, so ``..`` and encoded variants simply do not exist), and serving
them never waits for a thread. The page carries the server's token in a meta tag, which
``app.js`` sends back on every request that changes state (see :mod:`.guard`).
"""
from __future__ import annotations

import html
from importlib import resources

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

TOKEN_SLOT = '<meta name="seethrough-token" content="">'
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
# No other site may frame the page (clickjacking), nor make the browser guess content types.
HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def page_with_token(template: bytes, token: str) -> bytes:
    """``index.html`` with the token in its meta tag.

    >>> page_with_token(b'<head><meta name="seethrough-token" content=""></head>', "abc")
    b'<head><meta name="seethrough-token" content="abc"></head>'
    """
    slot = TOKEN_SLOT.encode()
    if slot not in template:
        raise ValueError("index.html has no token meta tag: the page could not change anything")
    return template.replace(slot, TOKEN_SLOT.replace('content=""', f'content="{html.escape(token)}"').encode())


def add_page(app: FastAPI, token: str) -> None:
    """Routes for ``/``, ``/favicon.ico`` and ``/static/<name>``.

    >>> from fastapi import FastAPI
    >>> app = FastAPI(); add_page(app, "t")
    >>> sorted(r.path for r in app.routes if r.path in ("/", "/static/{name}"))
    ['/', '/static/{name}']
    """
    folder = resources.files("seethrough.web").joinpath("static")
    files = {p.name: (p.read_bytes(), TYPES.get("." + p.name.rsplit(".", 1)[-1], "application/octet-stream"))
             for p in folder.iterdir() if p.is_file() and p.name != "index.html"}
    index = page_with_token(folder.joinpath("index.html").read_bytes(), token)

    @app.get("/")
    async def page() -> Response:
        return Response(index, media_type="text/html", headers={**HEADERS, "Cache-Control": "no-store"})

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(files["favicon.svg"][0], media_type="image/svg+xml", headers=HEADERS)

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, f"no static file {name[:80]!r}")
        body, media_type = files[name]
        return Response(body, media_type=media_type, headers=HEADERS)
