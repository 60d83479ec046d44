"""Request bodies -> (filename, bytes) pairs -> decoded images at the model's size and channels.

``/v1/predict`` also takes a whole batch as ONE ``application/x-npy`` body: a .npy array of N images,
(N, H, W) or (N, H, W, C), each image decoded by the same rules as a .npy file of its own (the fast way to send
many small images: no multipart parsing, one header, one read).
"""

from __future__ import annotations

import base64
import binascii
import io
import time

import numpy as np
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from components.serving import schemas
from components.serving.images import DecodedImage, InputError, decode_image
from components.serving.model_source import LoadedModel
from medpipe.config import ServingConfig
from medpipe.imaging import ImageError, load_npy_stack

RAW_TYPES = {"application/dicom", "application/octet-stream"}  # one image as the whole body (like image/*)
NPY_STACK = "application/x-npy"  # N images as one .npy array (N, H, W[, C])


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_images(
    request: Request, model: LoadedModel, cfg: ServingConfig
) -> tuple[list[str], list[DecodedImage], list[bytes]]:
    """(names, decoded images, the bytes to store per image) of every body ``/v1/predict`` takes."""
    if content_type(request) != NPY_STACK:
        inputs = await read_inputs(request, cfg)
        decoded = await run_in_threadpool(decode_all, inputs, model, cfg)
        return [name for name, _ in inputs], decoded, [data for _, data in inputs]
    data = await request.body()
    if not data:
        raise InputError(400, "empty_file", f"the {NPY_STACK} body is empty")
    name = request.headers.get("x-filename") or "stack"
    decoded = await run_in_threadpool(decode_stack, data, name, model, cfg)
    names = [f"{name}[{i}]" for i in range(len(decoded))]
    return names, decoded, (_split_stack(data) if cfg.store_images else [])


def decode_stack(data: bytes, name: str, model: LoadedModel, cfg: ServingConfig) -> list[DecodedImage]:
    """An ``application/x-npy`` body within the request's limits (images, pixels per image and in all)."""
    try:
        return load_npy_stack(
            data, name, model.preprocessing.spec, max_images=cfg.max_images_per_request,
            max_pixels=cfg.max_pixels, max_total_pixels=cfg.max_request_pixels,
        )  # fmt: skip
    except ImageError as err:
        raise InputError(err.status, err.code, err.reason, name) from None


def _split_stack(data: bytes) -> list[bytes]:
    """Each image of a (decoded, so valid) stack as a .npy file of its own: what ``serving.store_images`` keeps."""
    out = []
    for image in np.load(io.BytesIO(data), allow_pickle=False):
        buf = io.BytesIO()
        np.save(buf, image)
        out.append(buf.getvalue())
    return out


async def read_inputs(request: Request, cfg: ServingConfig, *, batch: bool = True) -> list[tuple[str, bytes]]:
    """(filename, bytes) of every image in a multipart (``files``), JSON (base64) or raw-body request.

    A raw body (``image/png``, ``application/dicom``, ...) is one image, named by an optional ``X-Filename``
    header; its content decides the format, as for files.
    """
    ctype = content_type(request)
    limit = cfg.max_images_per_request
    if ctype == "multipart/form-data":
        form = await request.form(max_files=limit + 1, max_fields=limit + 16)
        files = [f for f in form.getlist("files") if not isinstance(f, str)]
        if not files:
            raise InputError(422, "no_images", "multipart request has no file in the form field 'files'")
        if len(files) > limit:
            raise InputError(413, "too_many_images", f"more than serving.max_images_per_request={limit} images")
        return [(f.filename or f"file{i}", await f.read()) for i, f in enumerate(files)]
    if ctype == "application/json":
        try:
            body = schemas.PredictJSON.model_validate_json(await request.body())
        except ValidationError as err:
            raise InputError(422, "invalid_json", f"body must be {{'images': [{{'data': base64}}]}}: {err}") from None
        if len(body.images) > limit:
            raise InputError(413, "too_many_images", f"more than serving.max_images_per_request={limit} images")
        out = []
        for i, img in enumerate(body.images):
            name = img.filename or f"image{i}"
            try:
                out.append((name, base64.b64decode(img.data, validate=True)))
            except (binascii.Error, ValueError):
                raise InputError(422, "invalid_base64", "'data' is not valid base64", name) from None
        return out
    if ctype.startswith("image/") or ctype in RAW_TYPES:
        data = await request.body()
        if not data:
            raise InputError(400, "empty_file", f"the {ctype} body is empty")
        return [(request.headers.get("x-filename") or "body", data)]
    raise InputError(
        415,
        "unsupported_content_type",
        f"send multipart/form-data, application/json, one raw image/* or application/dicom body"
        f"{' or an ' + NPY_STACK + ' stack' if batch else ''}, not {ctype!r}",
    )


def decode_all(inputs: list[tuple[str, bytes]], model: LoadedModel, cfg: ServingConfig) -> list[DecodedImage]:
    """Decode every file of one request within the request's budget: ``serving.max_pixels`` per image,
    ``serving.max_request_pixels`` over all of them (checked from each header before it is decoded) and
    ``serving.max_decode_s`` of decoding. Over budget: 413 ``request_too_many_pixels`` /
    ``request_decode_too_slow``, so a few small, highly compressed files cannot cost minutes of CPU."""
    decoded: list[DecodedImage] = []
    left, started = cfg.max_request_pixels, time.monotonic()
    for name, data in inputs:
        spent = time.monotonic() - started
        if spent > cfg.max_decode_s:
            raise InputError(
                413,
                "request_decode_too_slow",
                f"decoding took {spent:.1f} s after {len(decoded)} of {len(inputs)} images, over "
                f"serving.max_decode_s={cfg.max_decode_s:g}; send fewer or smaller images per request",
                name,
            )
        try:
            image = decode_image(data, name, model.preprocessing, max_pixels=min(cfg.max_pixels, left))
        except InputError as err:
            if err.code != "too_many_pixels" or left >= cfg.max_pixels:
                raise
            raise InputError(
                413,
                "request_too_many_pixels",
                f"the images of this request add up to more than serving.max_request_pixels="
                f"{cfg.max_request_pixels} pixels ({len(decoded)} images decoded, {left} pixels left); "
                "send fewer or smaller images per request",
                name,
            ) from None
        left -= image.original_size[0] * image.original_size[1]
        decoded.append(image)
    return decoded
