"""One error shape for every failure: ``{"error": "...", "error_type": "..."}``.

Handlers turn validation errors (422, naming the field), HTTP errors and anything unexpected
(500, logged here with its traceback, never sent) into that shape.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, error_type: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type
        self.headers = headers or {}


def error_response(
    status: int, message: str, error_type: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": message, "error_type": error_type}, status_code=status, headers=headers
    )


INPUTS = "give a string, a list of strings, or (is_split_into_words) lists of words"


def field_name(location: tuple | list) -> str:
    """``body.parameters.return_tokens`` -> ``parameters.return_tokens``."""
    parts = [str(p) for p in location if p != "body"]
    return ".".join(parts) or "body"


def describe_validation(err: RequestValidationError | ValidationError) -> str:
    problems = []
    for item in err.errors():
        location = field_name(item.get("loc", ()))
        if location.split(".")[0] == "inputs" and "str]" in location or location == "inputs.str":
            problems.append(f"inputs: {INPUTS}")
            continue
        if item.get("type") == "json_invalid":
            problems.append(f"the body is not valid JSON ({item.get('msg')})")
        elif item.get("type") == "missing":
            problems.append(f"{location}: required")
        else:
            problems.append(f"{location}: {item.get('msg')}")
    # A union (str | list[str] | ...) reports one problem per member; say each field once.
    unique = list(dict.fromkeys(problems))
    return "; ".join(unique[:3]) + (f" (and {len(unique) - 3} more)" if len(unique) > 3 else "")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.message, err.error_type, err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(422, describe_validation(err), "invalid_request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            err.status_code, "http_error"
        )
        return error_response(err.status_code, str(err.detail), kind, dict(err.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error; see the server log", "internal")
