"""The decode policy: how pixels that are not plain 8-bit grey or RGB become 8-bit model input.

It is part of the preprocessing record saved with a model, so prepare, the server, batch predict and
the monitor decode a file the same way the training data was decoded.

* **8-bit** images (uint8 arrays, PIL modes L/RGB/P/RGBA/LA/1, JPEG, 8-bit DICOM without a window)
  keep their values.
* **16-bit, 32-bit integer and float** images (PNG/TIFF I;16, I, F modes; non-uint8 ``.npy``;
  DICOM after the modality LUT when no window applies) follow ``high_depth``:

  - ``minmax`` (default): each image's own range is stretched to 0..255 (robust to 12-bit data in
    16-bit containers, which a fixed scale would leave nearly black);
  - ``scale``: a fixed scale, 0..65535 -> 0..255 for 16-bit integers, 0..1 -> 0..255 for floats
    (clipped); keeps absolute intensity across images.
* **DICOM**: modality LUT (rescale slope/intercept), then the VOI LUT or window centre/width of the
  file (``window_center``/``window_width`` override it), mapped to 0..255; MONOCHROME1 is inverted.
  Without any window the ``high_depth`` rule applies. ``multiframe`` says what a multi-frame file
  becomes: an error (``reject``), its first or its middle frame.
* **Alpha** (RGBA, LA, palette with transparency) is composited onto black.
* **Grey <-> RGB**: RGB becomes grey by ITU-R 601-2 luma (PIL's ``convert("L")``); grey becomes RGB
  by repeating the channel.
* **Resize**: bilinear (PIL, antialiased when shrinking) to the model's square size.
* **EXIF orientation** is applied before anything else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DecodePolicy(BaseModel):
    """How files become 8-bit pixels; saved in the preprocessing record (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    high_depth: Literal["minmax", "scale"] = Field(
        "minmax", description="16-bit / float images: stretch each image's range (minmax) or a fixed scale."
    )
    window_center: float | None = Field(None, description="DICOM: override the file's window centre.")
    window_width: float | None = Field(None, gt=0, description="DICOM: override the file's window width.")
    multiframe: Literal["reject", "first", "middle"] = Field(
        "reject", description="DICOM multi-frame files: refuse them, or keep the first or the middle frame."
    )
