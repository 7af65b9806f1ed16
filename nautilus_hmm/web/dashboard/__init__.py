"""The built-in web dashboard: static files in this package, served at `/` and `/dashboard/<file>`.

No build step, no CDN: index.html, dashboard.css and dashboard.js (plain JS; the equity
chart is drawn on a <canvas> by our own code). The page reads the public read routes
(/status, /positions, /orders, /fills, /equity, /regimes, /models, /strategies) and the
unauthenticated `/events/public` stream; kill / reduce / resume appear once an admin token
is entered (kept in the tab's sessionStorage) and call the token-guarded admin routes
after a confirmation dialog.

`/` never needs a token and never answers an error page for a missing or wrong one. The
files are read once when the routes are built; a file missing from the install is answered
503 with a page naming it (the API routes are unaffected). Every answer carries a
Content-Security-Policy that allows only this origin's scripts, styles and connections
(no inline script) and forbids framing (a kill button must not be clickjacked).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from nautilus_hmm.web.routes import Route

ASSETS: dict[str, str] = {
    "index.html": "text/html",
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def load_assets() -> dict[str, bytes | None]:
    """The dashboard files by name (None: missing from the install)."""
    root = resources.files(__package__)
    out: dict[str, bytes | None] = {}
    for name in ASSETS:
        try:
            out[name] = root.joinpath(name).read_bytes()
        except (FileNotFoundError, OSError):
            out[name] = None
    return out


def _missing(name: str) -> web.Response:
    body = (f"<!doctype html><meta charset=utf-8><title>nautilus-hmm</title><p>The dashboard file {name} is "
            f"missing from this install (package {__package__}); the API routes still answer "
            "(<code>/status</code>, <code>/openapi.json</code>). Reinstall the package.</p>")
    return web.Response(text=body, status=503, content_type="text/html", headers=SECURITY_HEADERS)


def _asset(name: str, data: bytes | None) -> web.Response:
    if data is None:
        return _missing(name)
    return web.Response(body=data, content_type=ASSETS[name], charset="utf-8", headers=SECURITY_HEADERS)


def dashboard_routes(assets: dict[str, bytes | None] | None = None) -> list[Route]:
    """GET / (the page) and GET /dashboard/{name} (its CSS and JS)."""
    files = load_assets() if assets is None else assets

    async def index(request: web.Request) -> web.Response:
        # The page is the same for everyone: a token (header, query) is neither needed nor checked here.
        return _asset("index.html", files.get("index.html"))

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound(reason=f"no dashboard file {name!r} (files: {', '.join(ASSETS)})")
        return _asset(name, files.get(name))

    return [
        Route("GET", "/", index, "The web dashboard (read-only without a token)", content_type="text/html",
              responses={200: "the page", 503: "a dashboard file is missing from the install"}, tag="dashboard"),
        Route("GET", "/dashboard/{name}", asset, "The dashboard's CSS and JS", content_type="text/plain",
              responses={200: "the file", 404: "no such file"}, tag="dashboard"),
    ]
