"""Image features: real BreastMNIST images, known transforms move the right features."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from medpipe.imaging.features import FEATURE_COLUMNS, feature_arrays, feature_records, image_features


def test_columns_and_values(test_images: np.ndarray) -> None:
    f = image_features(test_images)
    assert list(f.columns) == list(FEATURE_COLUMNS)
    assert len(f) == len(test_images)
    assert f.notna().all(axis=None)
    assert (f["intensity_p5"] <= f["intensity_p50"]).all() and (f["intensity_p50"] <= f["intensity_p95"]).all()
    assert np.allclose(f["intensity_mean"], test_images.reshape(len(test_images), -1).mean(axis=1))
    assert (f["original_height"] == 28).all() and (f["channels"] == 1).all()


def test_transforms_move_the_right_features(test_images: np.ndarray) -> None:
    base = image_features(test_images)
    bright = image_features(np.clip(test_images.astype(float) * 1.3, 0, 255).astype(np.uint8))
    blurred = image_features(gaussian_filter(test_images, sigma=(0, 1.5, 1.5, 0)))
    assert bright["intensity_mean"].mean() > base["intensity_mean"].mean() * 1.2
    assert bright["saturated_fraction"].mean() > base["saturated_fraction"].mean()
    assert blurred["sharpness"].mean() < base["sharpness"].mean() / 3


def test_sizes_rgb_and_errors() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    f = image_features(rgb, original_sizes=[(100, 200)] * 3, original_channels=[3, 3, 4])
    assert f["aspect"].tolist() == [2.0, 2.0, 2.0] and f["channels"].tolist() == [3, 3, 4]
    assert image_features(np.zeros((0, 8, 8, 1), np.uint8)).empty
    with pytest.raises(ValueError, match="uint8"):
        image_features(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="original_sizes"):
        image_features(rgb, original_sizes=[(1, 1)])


def test_batch_features_equal_per_image_features(test_images: np.ndarray) -> None:
    """The server computes a request's features over the whole batch; monitoring's reference reads them per
    split: every image must get the same values either way (exactly, not approximately), RGB included."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (9, 20, 20, 3), dtype=np.uint8)
    for images, sizes, channels in ((test_images[:64], None, None), (rgb, [(40, 30)] * 9, [3, 4, 3, 3, 3, 4, 3, 3, 3])):
        batch = feature_arrays(images, sizes, channels)
        for i in range(len(images)):
            one = feature_arrays(images[i : i + 1], None if sizes is None else sizes[i : i + 1],
                                 None if channels is None else channels[i : i + 1])  # fmt: skip
            assert {k: v[0] for k, v in one.items()} == {k: v[i] for k, v in batch.items()}, f"image {i}"
        frame = image_features(images, sizes, channels)  # monitoring's table: the same arrays
        assert frame.to_dict("records") == feature_records(batch)
        assert list(feature_records(batch)[0]) == list(FEATURE_COLUMNS)
