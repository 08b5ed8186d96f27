"""The console's web application (Starlette, Jinja2): read-only pages over the verified mirror.

sign-in → overview → entries (filters, keyset pages) → one entry → one query → one order.

Pages read the mirror and the background sync's status; none of them verifies anything itself
or waits for the sync. Every page but sign-in needs a session; every POST a CSRF token.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from comity.audit.receipt import ReceiptTrust
from comity.core.errors import ComityError
from comity.sdk.console.auth import CSRF_COOKIE, SESSION_COOKIE, Session, Sessions, SignInLimit, same_token
from comity.sdk.console.mirror import FILTERS, Filters, Mirror
from comity.sdk.console.receipt_check import MAX_RECEIPT_BYTES, check_receipt
from comity.sdk.console.summaries import Summaries
from comity.sdk.console.sync import BackgroundSync
from comity.sdk.console.views import entry_view, report_charts, witness_age
from comity.sdk.console.words import KIND_WORDS, OUTCOME_WORDS, RuleText, rule_name
from comity.sdk.transparency import TransparencyReport

__all__ = ["Console", "make_app"]

_HERE = Path(__file__).resolve().parent
_log = logging.getLogger("comity.console")
PAGE_SIZE = 50
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@dataclass
class Console:
    """Everything the pages read: the mirror, the sync's status, sessions and rule texts."""

    mirror: Mirror
    sync: BackgroundSync
    sessions: Sessions
    log_origin: str
    rule_texts: Mapping[str, list[RuleText]] = field(default_factory=dict)
    secure_cookies: bool = False
    start_sync: bool = True
    #: Offence code → offence class, for the transparency report.
    offence_class: Callable[[str], str] = field(default=lambda code: "UNKNOWN")
    #: What receipts are checked against (``FederationTrust`` of the federation file); without
    #: it the receipt check page says it cannot check.
    receipt_trust: ReceiptTrust | None = None
    #: Failed sign-ins per client address.
    sign_in_limit: SignInLimit = field(default_factory=SignInLimit)


class _SignIn(Exception):
    """No session: the page redirects to sign-in."""


def make_app(console: Console) -> Starlette:
    """The ASGI application; the background sync starts and stops with it."""
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.globals.update(kind_words=KIND_WORDS, outcome_words=OUTCOME_WORDS, rule_name=rule_name)

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        session = _session(console, request)
        status = console.sync.status
        context |= {
            "status": status,
            "session": session,
            "now": datetime.now(UTC),
            "witnessed": witness_age(console.mirror.head().note, console.log_origin, datetime.now(UTC)),
        }
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        response.headers.update(_HEADERS)
        return response

    def officer(request: Request) -> Session:
        session = _session(console, request)
        if session is None:
            raise _SignIn
        return session

    def signin_page(request: Request) -> Response:
        if _session(console, request) is not None:
            return RedirectResponse("/", status_code=303)
        return _signin_form(request, render, console.secure_cookies, error=None)

    async def signin(request: Request) -> Response:
        form = await request.form()
        if not same_token(request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))):
            raise HTTPException(
                400, "The sign-in form expired or came from another site: reload it and try again."
            )
        client = request.client.host if request.client else "unknown"
        limit = console.sign_in_limit
        until = limit.refused_until(client)
        if until is not None:
            return _too_many(request, render, limit, until)
        try:
            key, session = console.sessions.sign_in(str(form.get("token", "")))
        except ComityError as exc:
            failures = limit.failed(client)
            _log.info("sign-in refused (%d recent failures from %s): %s", failures, client, exc.message)
            until = limit.refused_until(client)
            if until is not None:
                return _too_many(request, render, limit, until)
            left = limit.attempts - failures
            error = f"{exc.message} ({left} more attempt{'s' if left != 1 else ''} before sign-in is paused)"
            return _signin_form(request, render, console.secure_cookies, error=error, status_code=401)
        limit.succeeded(client)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            key,
            expires=session.expires_at,
            httponly=True,
            samesite="strict",
            secure=console.secure_cookies,
        )
        response.delete_cookie(CSRF_COOKIE)
        return response

    async def signout(request: Request) -> Response:
        session = officer(request)
        form = await request.form()
        if not same_token(session.csrf, str(form.get("csrf", ""))):
            raise HTTPException(400, "The sign-out form expired: reload the page and try again.")
        console.sessions.sign_out(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    summaries = Summaries(
        console.mirror, origin=console.log_origin, offence_class=lambda code: console.offence_class(code)
    )

    def home(request: Request) -> Response:
        officer(request)
        return render(request, "overview.html", data=summaries.overview(), current=console.mirror.head().size)

    def _report() -> TransparencyReport:
        return summaries.report()[1]

    def report(request: Request) -> Response:
        officer(request)
        size, result = summaries.report()
        return render(
            request,
            "report.html",
            size=size,
            current=console.mirror.head().size,
            charts=report_charts(result),
            decisions=sorted(result.decisions.items()),
            by_rule=sorted(result.refusals_by_rule.items(), key=lambda kv: -kv[1]),
        )

    def report_csv(request: Request) -> Response:
        officer(request)
        response = Response(_report().to_csv(), media_type="text/csv; charset=utf-8")
        response.headers.update(
            _HEADERS | {"Content-Disposition": 'attachment; filename="transparency-report.csv"'}
        )
        return response

    def report_json(request: Request) -> Response:
        officer(request)
        response = JSONResponse(_report().to_json())
        response.headers.update(
            _HEADERS | {"Content-Disposition": 'attachment; filename="transparency-report.json"'}
        )
        return response

    def entries(request: Request) -> Response:
        officer(request)
        raw = {k: v for k, v in request.query_params.items() if k in FILTERS}
        filters = Filters.parse(raw)
        try:
            page = console.mirror.page(
                filters,
                before=_cursor(request, "before"),
                after=_cursor(request, "after"),
                size=PAGE_SIZE,
            )
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        rows = [entry_view(r, console.rule_texts) for r in page.rows]
        query = urlencode(filters.values)
        return render(request, "entries.html", page=page, rows=rows, filters=filters.values, query=query)

    def entry(request: Request) -> Response:
        officer(request)
        row = console.mirror.entry(request.path_params["idx"])
        if row is None:
            raise HTTPException(404, f"The mirror holds no verified entry {request.path_params['idx']}.")
        story = console.mirror.query_entries(row.query_id) if row.query_id else []
        return render(
            request,
            "entry.html",
            view=entry_view(row, console.rule_texts),
            story=[entry_view(r, console.rule_texts) for r in story],
        )

    def query(request: Request) -> Response:
        officer(request)
        query_id = request.path_params["query_id"]
        story = console.mirror.query_entries(query_id)
        if not story:
            raise HTTPException(404, f"No verified entry names query {query_id!r}.")
        views = [entry_view(r, console.rule_texts) for r in story]
        return render(request, "query.html", query_id=query_id, story=views)

    def order(request: Request) -> Response:
        officer(request)
        order_id = request.path_params["order_id"]
        rows = console.mirror.order_entries(order_id)
        if not rows:
            raise HTTPException(404, f"No verified entry names legal order {order_id!r}.")
        return render(
            request, "order.html", order_id=order_id, rows=[entry_view(r, console.rule_texts) for r in rows]
        )

    def receipt_page(request: Request) -> Response:
        officer(request)
        return render(request, "receipt.html", verdict=None, available=console.receipt_trust is not None)

    async def receipt_check(request: Request) -> Response:
        session = officer(request)
        async with request.form(max_files=1, max_fields=4, max_part_size=MAX_RECEIPT_BYTES) as form:
            if not same_token(session.csrf, str(form.get("csrf", ""))):
                raise HTTPException(400, "The receipt form expired: reload the page and try again.")
            upload = form.get("file")
            text: str | bytes = str(form.get("receipt", "")).strip()
            if isinstance(upload, UploadFile) and upload.filename:
                text = await upload.read(MAX_RECEIPT_BYTES + 1)
        if not text:
            raise HTTPException(400, "Paste a receipt into the box or choose its file, then press Check.")
        if console.receipt_trust is None:
            raise HTTPException(400, "This console was started without the federation's trust for receipts.")
        verdict = check_receipt(text, console.receipt_trust, origin=console.log_origin, mirror=console.mirror)
        return render(request, "receipt.html", verdict=verdict, available=True)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed"}
        return render(
            request,
            "error.html",
            status_code=exc.status_code,
            title=titles.get(exc.status_code, "Error"),
            detail=exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else "No such page.",
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        _log.exception("page failed", exc_info=exc)
        return render(
            request,
            "error.html",
            status_code=500,
            title="Something went wrong",
            detail="The page could not be shown; the console's log has the details.",
        )

    async def sign_in_first(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/signin?" + urlencode({"next": request.url.path}), status_code=303)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if console.start_sync:
            console.sync.start()
            summaries.start()
        try:
            yield
        finally:
            if console.start_sync:
                summaries.stop()
                console.sync.stop()

    routes = [
        Route("/", home),
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/entries", entries),
        Route("/report", report),
        Route("/report.csv", report_csv),
        Route("/report.json", report_json),
        Route("/receipt", receipt_page, methods=["GET"]),
        Route("/receipt", receipt_check, methods=["POST"]),
        Route("/entries/{idx:int}", entry),
        Route("/queries/{query_id:str}", query),
        Route("/orders/{order_id:str}", order),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, _SignIn: sign_in_first, Exception: server_error},
    )


def _session(console: Console, request: Request) -> Session | None:
    return console.sessions.get(request.cookies.get(SESSION_COOKIE))


def _cursor(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    if not value:
        return None
    if not value.isdigit():
        raise HTTPException(400, f"{name} must be an entry number.")
    return int(value)


def _too_many(request: Request, render: Any, limit: SignInLimit, until: datetime) -> Response:
    wait = max(1, int((until - datetime.now(UTC)).total_seconds() // 60) + 1)
    minutes = int(limit.window.total_seconds() // 60)
    response: Response = render(
        request,
        "error.html",
        status_code=429,
        title="Too many failed sign-ins",
        detail=(
            f"{limit.attempts} sign-ins from this address were refused in the last {minutes} minutes, so "
            f"sign-in is paused for it until {until.strftime('%H:%M:%S UTC')} (about {wait} minute"
            f"{'s' if wait != 1 else ''}). Check that you paste your own legal officer's token, whole "
            "and not expired, then try again after that time."
        ),
    )
    response.headers["Retry-After"] = str(max(1, int((until - datetime.now(UTC)).total_seconds())))
    return response


def _signin_form(
    request: Request, render: Any, secure: bool, *, error: str | None, status_code: int = 200
) -> Response:
    csrf = secrets.token_urlsafe(32)
    response: Response = render(request, "signin.html", status_code=status_code, csrf=csrf, error=error)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", max_age=3600, secure=secure)
    return response
