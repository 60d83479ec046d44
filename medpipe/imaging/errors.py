"""The one error of the imaging contract: a file that cannot become model input."""

from __future__ import annotations

from medpipe.errors import DataError


class ImageError(DataError):
    """A file that cannot be used as an image. ``name`` is the file as the user knows it, ``reason`` a short
    user-facing explanation, ``code`` a stable machine name and ``status`` the HTTP status a server answers."""

    def __init__(self, name: str, reason: str, *, code: str = "corrupt_image", status: int = 422) -> None:
        super().__init__(f"{name}: {reason}" if name else reason)
        self.name, self.reason, self.code, self.status = name, reason, code, status
