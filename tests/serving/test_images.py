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


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.mark.parametrize(
    "stack",
    [
        np.random.default_rng(0).integers(0, 256, (5, 40, 50), dtype=np.uint8),  # grey, resized
        np.random.default_rng(1).integers(0, 4096, (4, 28, 28, 1), dtype=np.uint16),  # 12-bit: minmax per image
        np.random.default_rng(2).integers(0, 256, (3, 30, 30, 4), dtype=np.uint8),  # RGBA: alpha, then luma
        np.asfortranarray(np.random.default_rng(3).random((2, 28, 28)).astype(np.float32)),  # float, Fortran order
    ],
)
def test_a_npy_stack_decodes_each_image_as_its_own_npy_file(stack: np.ndarray) -> None:
    from components.serving.inputs import decode_stack
    from medpipe.config import ServingConfig
    from medpipe.imaging import load_npy_stack

    got = load_npy_stack(_npy(stack), "s", pre().spec, max_images=8, max_pixels=10_000, max_total_pixels=100_000)
    for i, image in enumerate(got):
        alone = decode_image(_npy(stack[i]), f"s{i}.npy", pre(), max_pixels=10_000)
        assert np.array_equal(image.array, alone.array), i
        assert (image.original_size, image.original_channels) == (alone.original_size, alone.original_channels)
    assert len(got) == len(stack)

    class Model:  # what decode_stack reads of a LoadedModel
        preprocessing = pre()

    cfg = ServingConfig(max_images_per_request=len(stack) - 1)
    with pytest.raises(InputError) as err:
        decode_stack(_npy(stack), "batch", Model(), cfg)  # type: ignore[arg-type]
    assert (err.value.status, err.value.code, err.value.filename) == (413, "too_many_images", "batch")


def test_a_npy_stack_is_refused_by_its_header_before_it_is_read() -> None:
    from medpipe.imaging import ImageError, load_npy_stack

    limits = {"max_images": 64, "max_pixels": 10_000, "max_total_pixels": 20_000}
    cases = [
        (np.zeros((28, 28), np.uint8), "wrong_shape"),  # one image: a stack needs N
        (np.zeros((2, 28, 28, 2), np.uint8), "wrong_shape"),
        (np.zeros((0, 28, 28), np.uint8), "empty_image"),
        (np.zeros((2, 200, 200), np.uint8), "too_many_pixels"),
        (np.zeros((30, 28, 28), np.uint8), "request_too_many_pixels"),
        (np.array([[[None]]], dtype=object), "wrong_dtype"),
    ]
    for arr, code in cases:
        data = _npy(arr) if arr.dtype != object else _npy_object(arr)
        with pytest.raises(ImageError) as err:
            load_npy_stack(data, "s", pre().spec, **limits)
        assert err.value.code == code, arr.shape
    with pytest.raises(ImageError, match="truncated"):
        load_npy_stack(_npy(np.zeros((3, 28, 28), np.uint8))[:-10], "s", pre().spec, **limits)


def _npy_object(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()
