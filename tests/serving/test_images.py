from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from components.serving.images import InputError, decode_image

GRADIENT = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))  # 40 x 50


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP", "JPEG"])
def test_formats_decode_and_resize(fmt: str) -> None:
    out = decode_image(encode(Image.fromarray(GRADIENT), fmt), "x.bin", channels=1, image_size=28, max_pixels=10_000)
    assert out.array.shape == (28, 28, 1) and out.array.dtype == np.uint8
    assert (out.original_size, out.original_channels, out.format) == ((40, 50), 1, fmt)
    expected = np.asarray(Image.fromarray(GRADIENT).resize((28, 28), Image.BILINEAR))
    assert np.abs(out.array[..., 0].astype(int) - expected).max() <= (8 if fmt == "JPEG" else 0)


def test_sixteen_bit_grey_and_grey_stored_as_rgb() -> None:
    wide = Image.fromarray(GRADIENT.astype(np.uint16) * 257)  # mode I;16
    out = decode_image(encode(wide, "PNG"), "w.png", channels=1, image_size=40, max_pixels=10_000)
    assert abs(int(out.array.max()) - 245) <= 1
    rgb = Image.fromarray(np.stack([GRADIENT] * 3, axis=-1))
    assert (
        decode_image(encode(rgb, "PNG"), "g.png", channels=1, image_size=28, max_pixels=10_000).original_channels == 3
    )
    with pytest.raises(InputError) as err:
        decode_image(encode(Image.fromarray(GRADIENT), "PNG"), "g.png", channels=3, image_size=28, max_pixels=10_000)
    assert err.value.code == "wrong_channels" and "3 (RGB)" in err.value.message


def test_pixel_limit_checked_before_decoding() -> None:
    data = encode(Image.new("L", (200, 200)), "PNG")
    with pytest.raises(InputError) as err:
        decode_image(data, "big.png", channels=1, image_size=28, max_pixels=39_999)
    assert (err.value.status, err.value.code, err.value.filename) == (413, "too_many_pixels", "big.png")
