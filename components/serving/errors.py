"""Error bodies of the serving API: ``{"error": code, "detail": what to do, "file": culprit}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from components.serving import schemas
from components.serving.images import InputError
from medpipe.errors import MedpipeError

log = logging.getLogger("medpipe.serving")

ERROR_RESPONSES: dict[int | str, dict] = {code: {"model": schemas.ErrorBody} for code in (400, 401, 413, 415, 422, 503)}


def error_response(
    status: int, code: str, detail: str, file: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "detail": detail, "file": file}, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input_error(request: Request, err: InputError) -> JSONResponse:
        if request.url.path.startswith("/v2"):  # the Open Inference Protocol's error body: {"error": message}
            body = {"error": f"{err.code}: {err.message}"}
            return JSONResponse(status_code=err.status, content=body, headers=err.headers)
        return error_response(err.status, err.code, err.message, err.filename, err.headers)

    @app.exception_handler(MedpipeError)
    async def _medpipe_error(_: Request, err: MedpipeError) -> JSONResponse:
        return error_response(422, "invalid_request", str(err))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", f"{type(err).__name__}: {err}")
