"""Request files -> model input through the imaging contract (:mod:`medpipe.imaging`), or an
:class:`InputError` (HTTP status + stable code) naming the file and saying why not.

No decoding happens here: the server, ``medpipe predict`` and prepare share ``medpipe.imaging``, so a
file becomes the same pixels whoever reads it.
"""

from __future__ import annotations

from medpipe.errors import MedpipeError
from medpipe.imaging import ImageError, ModelImage, Preprocessing, load_image

DecodedImage = ModelImage  # what the routes and the inference log read: array, original_size, ...


class InputError(MedpipeError):
    """A request input the server refuses; ``status`` is the HTTP code, ``code`` a stable error name."""

    def __init__(
        self, status: int, code: str, message: str, filename: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{filename}: {message}" if filename else message)
        self.status, self.code, self.message, self.filename = status, code, message, filename
        self.headers = headers or {}  # e.g. Retry-After on a 429


def decode_image(data: bytes, filename: str, pre: Preprocessing, *, max_pixels: int) -> ModelImage:
    """One uploaded file as the model's uint8 (S, S, C) input, decoded as its training data was."""
    try:
        return load_image(data, filename, pre.spec, max_pixels=max_pixels)
    except ImageError as err:
        raise InputError(err.status, err.code, err.reason, filename) from None
