"""The web page for people who do not use curl: `/analytics/datasets` and `/analytics/exports`.

Plain HTML, CSS and JavaScript modules from `api/static/analytics/` (no build step, no Node.js, no
CDN), served by the gateway so the page calls the API on the same origin. The pages themselves are
public; every API call they make carries the user's bearer JWT (see `api/static/analytics/api.js`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "analytics"
_NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate: a new release must not meet yesterday's script


def install_web(app: FastAPI) -> None:
    app.mount("/analytics/static", StaticFiles(directory=STATIC_DIR), name="analytics-static")

    @app.get("/analytics", include_in_schema=False)
    def analytics_home() -> RedirectResponse:
        return RedirectResponse("/analytics/datasets")

    @app.get("/analytics/datasets", include_in_schema=False)
    def datasets_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "datasets.html", headers=_NO_CACHE)

    @app.get("/analytics/exports", include_in_schema=False)
    def exports_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "exports.html", headers=_NO_CACHE)
