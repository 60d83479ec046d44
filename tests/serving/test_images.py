from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from components.serving.images import InputError, decode_image
from medpipe.imaging import Preprocessing
from tests.helpers.data import preprocessing

GRADIENT = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))  # 40 x 50


def pre(size: int = 28, channels: int = 1) -> Preprocessing:
    return preprocessing(size, channels, std=0.2)


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP", "JPEG"])
def test_formats_decode_and_resize(fmt: str) -> None:
    out = decode_image(encode(Image.fromarray(GRADIENT), fmt), "x.bin", pre(), max_pixels=10_000)
    assert out.array.shape == (28, 28, 1) and out.array.dtype == np.uint8
    assert (out.original_size, out.original_channels, out.format) == ((40, 50), 1, fmt)
    expected = np.asarray(Image.fromarray(GRADIENT).resize((28, 28), Image.BILINEAR))
    assert np.abs(out.array[..., 0].astype(int) - expected).max() <= (8 if fmt == "JPEG" else 0)


def test_rgb_to_grey_and_grey_to_rgb_follow_the_one_rule() -> None:
    rgb = np.stack([GRADIENT, 255 - GRADIENT, GRADIENT // 2], axis=-1)
    out = decode_image(encode(Image.fromarray(rgb), "PNG"), "c.png", pre(size=40), max_pixels=10_000)
    assert out.original_channels == 3
    luma = np.asarray(Image.fromarray(rgb).convert("L").resize((40, 40), Image.BILINEAR))
    assert np.array_equal(out.array[..., 0], luma)
    grey = decode_image(encode(Image.fromarray(GRADIENT), "PNG"), "g.png", pre(channels=3), max_pixels=10_000)
    assert grey.array.shape == (28, 28, 3) and np.array_equal(grey.array[..., 0], grey.array[..., 2])


def test_pixel_limit_checked_before_decoding() -> None:
    data = encode(Image.new("L", (200, 200)), "PNG")
    with pytest.raises(InputError) as err:
        decode_image(data, "big.png", pre(), max_pixels=39_999)
    assert (err.value.status, err.value.code, err.value.filename) == (413, "too_many_pixels", "big.png")


def test_not_an_image_names_the_file() -> None:
    with pytest.raises(InputError) as err:
        decode_image(b"hello world", "notes.txt", pre(), max_pixels=10_000)
    assert (err.value.status, err.value.code) == (415, "unsupported_type") and "notes.txt" in str(err.value)
