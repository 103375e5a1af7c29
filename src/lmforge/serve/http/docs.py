"""The API browser at /docs: Swagger UI from the copy that the pinned `fastapi-offline`
package ships, served by this server. The page is where people type their API key, so no
third-party script may run on it: the assets are local, the online validator is off, and a
Content-Security-Policy keeps the page to this origin."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)

DOCS = "/docs"
ASSETS = "/docs/assets"
# Inline script and style: the page's own setup code; everything else from this origin only.
POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def assets_dir() -> Path | None:
    """Where Swagger UI's files are (the package's `static` dir); None when not installed."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    static = Path(spec.origin).parent / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> bool:
    """Add /docs, its OAuth2 redirect and its assets to `app` (made with `docs_url=None`);
    False, with a warning, when the assets are not installed: then there is no /docs."""
    static = assets_dir()
    if static is None:
        log.warning("Swagger UI's files (package fastapi-offline) are not installed: no /docs")
        return False
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or f"{DOCS}/oauth2-redirect"

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        html = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            oauth2_redirect_url=f"{root}{redirect_url}",
            # validatorUrl: Swagger UI would otherwise send the schema's URL to swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
        html.headers["Content-Security-Policy"] = POLICY
        return html

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route(DOCS, page, methods=["GET"], include_in_schema=False)
    app.add_api_route(redirect_url, oauth2_redirect, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=static), name="docs-assets")
    return True
