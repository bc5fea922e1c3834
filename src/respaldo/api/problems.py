"""One error handler: every failure of a request becomes ``application/problem+json``
(RFC 9457) with the right status, a title, the error's message as ``detail`` and its
``hint``.

What never reaches a client: a stack trace (an unexpected exception is logged here,
scrubbed, and answered with a generic 500), a password, key or passphrase the server
holds or loaded from a file or the environment, or the path of a file holding one
(``passphrase_file``, ``password_file``, ``secret_access_key_file``...; replaced by
``<secret file>``: :mod:`respaldo.operations.scrub`), nor the input of a malformed
request (it may be a password).
"""

from __future__ import annotations

import json
import logging
import traceback
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException

from respaldo.config import Settings
from respaldo.errors import (
    AccessError,
    BackupNotFound,
    BackupProtected,
    DatabaseExists,
    DatabaseNotFound,
    InvalidBackupId,
    InvalidInput,
    InvalidTransition,
    JobConflict,
    RecordExists,
    RecordNotFound,
    RepositoryLocked,
    RespaldoError,
    first_line,
)
from respaldo.operations.health import CATALOG_FAILS, CATALOG_HINT, CATALOG_OUTAGES
from respaldo.operations.scrub import Scrubber as Scrubber

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

# Most specific first: the first class an error is an instance of gives its status.
# Anything else respaldo raises on purpose is a failure of the service, not of the
# request: 503 (a repository or the catalog unreachable, the server's own configuration
# wrong: a request's own mistakes are InvalidInput, which is a ConfigError).
STATUSES: tuple[tuple[type[RespaldoError], int], ...] = (
    (InvalidInput, 422),
    (InvalidBackupId, 404),
    (RecordNotFound, 404),
    (BackupNotFound, 404),
    (DatabaseNotFound, 404),
    (JobConflict, 409),
    (InvalidTransition, 409),
    (RecordExists, 409),
    (DatabaseExists, 409),
    (BackupProtected, 409),
    (RepositoryLocked, 409),
)


class Problem(BaseModel):
    """An error, as RFC 9457 ``application/problem+json``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    type: str = Field(default="about:blank", description="Always about:blank: see status.")
    title: str = Field(description="The HTTP status's phrase, e.g. Not Found.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong, in one line.")
    hint: str | None = Field(default=None, description="What to do about it, if known.")
    error: str | None = Field(
        default=None, description="respaldo's error class, e.g. RecordNotFound."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None,
        description="For a malformed request: each field that is wrong (loc, msg, type).",
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry declaring ``statuses`` as problems."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def status_of(error: RespaldoError) -> int:
    if isinstance(error, AccessError):  # 401, 403, 429: the error says which
        return error.status
    for cls, status in STATUSES:
        if isinstance(error, cls):
            return status
    return 503


def api_name(field: str) -> str:
    """An application function's argument as the API names it: its JSON field."""
    return API_NAMES.get(field, to_camel(field))


API_NAMES = {"kind": "type", "since": "from", "until": "to"}
"""Arguments whose API name is not their camelCase name."""


def problem(
    status: int,
    detail: str,
    *,
    hint: str | None = None,
    error: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        hint=hint or None,
        error=error,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(mode="json", by_alias=True, exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def document(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI schema say what the handlers answer: every error response
    (FastAPI's default 422 included) is a :class:`Problem` as ``application/problem+json``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema(by_alias=True))
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, answer in operation.get("responses", {}).items():
                    if status[:1] in ("4", "5") and not _own_answer(answer):
                        answer["content"] = {MEDIA_TYPE: {"schema": PROBLEM_REF}}
        for unused in ("HTTPValidationError", "ValidationError"):
            if f'"#/components/schemas/{unused}"' not in json.dumps(schema["paths"]):
                schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _own_answer(answer: dict[str, Any]) -> bool:
    """Whether an error response is a route's own JSON model, not a problem: ``/health``'s
    503 is its :class:`~respaldo.operations.health.Health`, saying what fails."""
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    return bool(ref) and ref.rpartition("/")[2] not in ("HTTPValidationError", "Problem")


def _json_type(content_type: str) -> bool:
    """Whether FastAPI reads a body of ``content_type`` as JSON (``application/json``,
    ``application/*+json``, with any parameters)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def install(app: FastAPI, settings: Settings) -> None:
    """Register the handlers on ``app`` and document them (:func:`document`)."""
    scrub = Scrubber(settings)
    document(app)

    async def respaldo_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RespaldoError)
        message, hint = exc.rendered(api_name)
        status = status_of(exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, scrub(message))
        return problem(status, scrub(message), hint=scrub(hint) or None, error=type(exc).__name__)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # No "input" and no "ctx": a malformed body may carry a password.
        errors = [
            {
                "loc": [str(part) for part in e.get("loc", ())],
                "msg": scrub(str(e.get("msg", ""))),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        where = ", ".join(".".join(e["loc"]) for e in errors)
        sent_as = request.headers.get("content-type")
        if (
            sent_as is not None
            and not _json_type(sent_as)
            and any(e["loc"] == ["body"] and e["type"] == "model_attributes_type" for e in errors)
        ):
            # `curl -d '{"type": "full"}'` without its Content-Type: FastAPI does not
            # read the body as JSON and said only that it "should be a valid
            # dictionary", which it looked like.
            return problem(
                400,
                f"the body must be JSON, sent as application/json (it came as {sent_as})",
                hint="send the header Content-Type: application/json "
                "(curl: -H 'Content-Type: application/json', or --json)",
                errors=errors,
            )
        # A body that is not JSON at all is a bad request; JSON that does not fit, 422.
        status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
        return problem(status, f"the request is malformed: {where}", errors=errors)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, scrub(detail), headers=headers)

    async def catalog_down(request: Request, exc: Exception) -> JSONResponse:
        # The catalog's server stopped, restarting or refusing the service: the request
        # may work in a moment, so 503 (as /health answers), with the fixed sentence, not
        # the driver's text (host, port, role). The reason goes to the log, on one line.
        log.warning(
            "%s %s: the catalog does not answer: %s",
            request.method,
            request.url.path,
            scrub(first_line(exc)),
        )
        return problem(503, CATALOG_FAILS, hint=CATALOG_HINT, error="CatalogUnavailable")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server's log only, scrubbed: its text may hold
        # anything, a password a driver echoed included.
        trace = "".join(traceback.format_exception(exc)).rstrip()
        log.error("%s %s failed\n%s", request.method, request.url.path, scrub(trace))
        return problem(
            500,
            "an unexpected error stopped the request",
            hint="the server's log has the details",
        )

    app.add_exception_handler(RespaldoError, respaldo_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    for outage in CATALOG_OUTAGES:
        app.add_exception_handler(outage, catalog_down)
    app.add_exception_handler(Exception, unexpected)
