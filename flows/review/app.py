"""The review page: a FastAPI app over the campaign store.

Pages are rendered on the server (Jinja2, every value escaped) and the candidate table, the
decisions and the uploads go through the JSON API under ``/api/`` that the page's own script
uses (its OpenAPI description is at ``/docs``). All assets are served from ``static/``; nothing
is loaded from the internet.

Safety: with a token (``invdes review --token`` or ``INVDES_REVIEW_TOKEN``), every page and API
request must carry it (an ``Authorization: Bearer`` or ``X-Invdes-Token`` header, or the
cookie that ``/login?token=...`` sets); without one the app is meant for 127.0.0.1 only, and
``invdes review`` refuses another address. Uploads are limited to :data:`UPLOAD_LIMIT_BYTES`.
"""

from __future__ import annotations

import hmac
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from flows.review import data
from pipeline.decisions import DECISIONS
from pipeline.registry import load_plugins
from pipeline.store import Store

HERE = Path(__file__).resolve().parent
UPLOAD_LIMIT_BYTES = 2_000_000
"""Largest lab-results file the page takes."""
TOKEN_COOKIE = "invdes_token"


class TokenCheck(BaseHTTPMiddleware):
    """Refuses requests without the token (when the app has one)."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        if path.startswith("/static/") or path == "/login":
            return await call_next(request)
        given = (request.headers.get("x-invdes-token")
                 or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                 or request.cookies.get(TOKEN_COOKIE, ""))
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return JSONResponse({"detail": "a token is required: open /login?token=... once, or "
                                           "send an X-Invdes-Token header"}, status_code=401)
        return await call_next(request)


class UploadLimit(BaseHTTPMiddleware):
    """Refuses a request body larger than the upload limit before it is read (the multipart
    parser would otherwise take it all in first)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > UPLOAD_LIMIT_BYTES + 65_536:
            return JSONResponse({"detail": f"upload larger than the "
                                           f"{UPLOAD_LIMIT_BYTES // 1_000_000} MB limit"},
                                status_code=413)
        return await call_next(request)


def create_app(store_url: str, token: str | None = None) -> FastAPI:
    """The review app over the store at ``store_url``.

    Args:
        store_url: SQLAlchemy URL of the campaign store.
        token: required on every request when given.
    """
    # the domains (RDKit, torch, pymatgen) load in the background while the page already
    # answers (the campaigns list needs none of them); a second later, because the imports
    # hold the interpreter for seconds and would slow the server's own start
    loader = threading.Timer(1.0, load_plugins)
    loader.daemon = True
    loader.start()
    app = FastAPI(title="invdes review",
                  description="Ranked candidates to look at, veto, send to the lab, and learn "
                              "from. The page itself uses this API.")
    store = Store(store_url)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(UploadLimit)
    if token:
        app.add_middleware(TokenCheck, token=token)

    def errors(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except data.NotFound as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except data.BadRequest as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)

    # pages ----------------------------------------------------------------------------------

    @app.get("/login", include_in_schema=False)
    def login(token_given: Annotated[str, Query(alias="token")] = "") -> Response:
        if not token:
            return RedirectResponse("/", status_code=303)
        if not hmac.compare_digest(token_given.encode(), token.encode()):
            return JSONResponse({"detail": "wrong token"}, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> Response:
        return templates.TemplateResponse(request, "index.html",
                                          {"campaigns": data.campaign_summaries(store)})

    @app.get("/campaigns/{name}", response_class=HTMLResponse, include_in_schema=False)
    def campaign_page(request: Request, name: str) -> Response:
        try:
            overview = data.campaign_overview(store, name)
        except data.NotFound as exc:
            return templates.TemplateResponse(request, "missing.html", {"message": str(exc)},
                                              status_code=404)
        return templates.TemplateResponse(request, "campaign.html", {"c": overview,
                                                                     "decisions": DECISIONS})

    @app.get("/campaigns/{name}/candidates/{candidate_id}", response_class=HTMLResponse,
             include_in_schema=False)
    def candidate_page(request: Request, name: str, candidate_id: str) -> Response:
        try:
            detail = data.candidate_detail(store, name, candidate_id)
        except data.NotFound as exc:
            return templates.TemplateResponse(request, "missing.html", {"message": str(exc)},
                                              status_code=404)
        return templates.TemplateResponse(request, "candidate.html",
                                          {"d": detail, "decisions": DECISIONS})

    # API ------------------------------------------------------------------------------------

    @app.get("/api/campaigns")
    def api_campaigns() -> list[dict[str, Any]]:
        """Every campaign: objective, rounds, oracle results and calls, hits, best score."""
        return data.campaign_summaries(store)

    @app.get("/api/campaigns/{name}")
    def api_campaign(name: str) -> Any:
        """A campaign's target, properties, fidelities and rounds with their metrics."""
        return errors(data.campaign_overview, store, name)

    @app.get("/api/campaigns/{name}/candidates")
    def api_candidates(
        name: str, sort: str = "rank", desc: bool = False,
        filter: Annotated[list[str] | None, Query(
            description="COLUMN OP VALUE, OP one of = != < <= > >= ~ (contains); repeatable")
        ] = None,
        search: Annotated[str, Query(description="SMARTS (molecules) or formula or element "
                                                 "symbols (perovskites)")] = "",
        page: int = 1, per_page: int = 50,
    ) -> Any:
        """One page of the ranked candidates, sorted and filtered by any column."""
        return errors(data.candidate_table, store, name, sort=sort, descending=desc,
                      filters=filter or [], search=search, page=page, per_page=per_page)

    @app.get("/api/campaigns/{name}/candidates/{candidate_id}")
    def api_candidate(name: str, candidate_id: str) -> Any:
        """One candidate: predictions, oracle and lab values with fidelity and level of theory,
        score, round, generator, filter verdict, decisions."""
        return errors(data.candidate_detail, store, name, candidate_id)

    @app.get("/api/campaigns/{name}/candidates/{candidate_id}/depiction.svg")
    def api_depiction(name: str, candidate_id: str) -> Response:
        """The candidate's picture (molecules: shaded by HOMO and LUMO shares where computed)."""
        result = errors(data.depiction, store, name, candidate_id)
        if isinstance(result, Response):
            return result
        return Response(result, media_type="image/svg+xml",
                        headers={"Content-Security-Policy": "default-src 'none'; "
                                                            "style-src 'unsafe-inline'"})

    @app.post("/api/campaigns/{name}/candidates/{candidate_id}/decisions")
    def api_decide(name: str, candidate_id: str,
                   decision: Annotated[str, Body(description="approve, reject or flag")],
                   reviewer: Annotated[str, Body(description="who decides")],
                   comment: Annotated[str, Body()] = "") -> Any:
        """Stores a decision with its time; a rejected design is never proposed or selected
        again in the campaign."""
        return errors(data.decide, store, name, candidate_id, decision, reviewer, comment)

    @app.get("/api/campaigns/{name}/export")
    def api_export(name: str, which: str = "approved", format: str = "csv") -> Response:
        """The approved (or selected) candidates for the lab: CSV, or SDF / CIF."""
        result = errors(data.export, store, name, which, format)
        if isinstance(result, Response):
            return result
        filename, media, text = result
        return Response(text, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @app.post("/api/campaigns/{name}/lab-results")
    async def api_lab_results(name: str, file: Annotated[UploadFile, File()],
                              fidelity: str = "lab") -> Any:
        """Imports a lab-results CSV with the checks of ``invdes results import``: all or
        nothing, every problem named with its row and column; the same file twice changes
        nothing."""
        content = await file.read(UPLOAD_LIMIT_BYTES + 1)
        if len(content) > UPLOAD_LIMIT_BYTES:
            return JSONResponse({"detail": f"{file.filename}: larger than the "
                                           f"{UPLOAD_LIMIT_BYTES // 1_000_000} MB limit"},
                                status_code=413)
        return errors(data.import_lab, store, name, content, file.filename or "upload.csv",
                      fidelity)

    @app.get("/api/campaigns/{name}/plots/{kind}.png")
    def api_plot(name: str, kind: str, prop: Annotated[str | None, Query(alias="property")]
                 = None) -> Response:
        """Plots: best (best so far against oracle results), distribution (a property per
        round), parity (predicted against measured), pareto (two objectives)."""
        result = errors(data.plot, store, name, kind, prop)
        if isinstance(result, Response):
            return result
        return Response(result, media_type="image/png")

    return app
