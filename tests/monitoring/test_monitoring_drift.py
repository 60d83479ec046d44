"""The drift check on real data: iid windows pass, shifted windows are caught, tiny windows say so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from medpipe.imaging import ImageSpec
from monitoring.drift import compute_drift
from monitoring.reference import ReferenceProfile
from monitoring.window import load_image_folder, window_from_images, window_from_log


def _window(images, embed_fn, reference):
    return window_from_images(images, embed_fn, reference)


def test_reference_profile_roundtrip(
    reference: ReferenceProfile, tmp_path: Path, embed_fn, prepared_breastmnist: Path
) -> None:
    from components.data.dataset import load_split

    assert len(reference.frame) == 78 and set(reference.frame["split"]) == {"val"}  # held-out images only
    val = load_split(prepared_breastmnist, "val")
    probs, _ = embed_fn(val.images)
    assert reference.n_components == 8
    assert reference.reference_accuracy == pytest.approx(np.mean(probs.argmax(1) == val.labels))  # the model's own
    assert reference.thumbnails is not None and reference.thumbnails.shape[1:] == (28, 28, 1)
    loaded = ReferenceProfile.load(reference.save(tmp_path / "ref"))
    assert loaded.class_names == reference.class_names and loaded.atc_threshold == reference.atc_threshold
    assert np.array_equal(loaded.thumbnails, reference.thumbnails)
    emb = embed_fn(np.zeros((2, 28, 28, 1), np.uint8))[1]
    assert np.allclose(loaded.project(emb), reference.project(emb))
    with pytest.raises(Exception, match="lacks"):
        ReferenceProfile.load(tmp_path)


def test_iid_window_is_not_drift(reference, embed_fn, test_images, mon_cfg) -> None:
    """Test images are iid with the val reference: the trained model saw neither."""
    summary = compute_drift(reference, _window(test_images[:100], embed_fn, reference), mon_cfg, model_version="3")
    assert summary.status == "ok" and not summary.drift_detected, summary.to_json()
    tests = [s for s in summary.signals if s.kind == "test"]
    assert {s.name for s in tests} == {"embedding_mmd", "softmax", "image_statistics"}
    assert all(s.threshold == pytest.approx(mon_cfg.alpha / 3) and s.p_value >= s.threshold for s in tests)
    assert summary.estimated_accuracy is not None and summary.window_size == 100 and summary.alpha == mon_cfg.alpha


@pytest.mark.parametrize(
    "shift",
    [
        lambda x: gaussian_filter(x, sigma=(0, 1.0, 1.0, 0)),
        lambda x: np.clip(x.astype(np.float32) * 1.3, 0, 255).astype(np.uint8),
        lambda x: np.ascontiguousarray(np.rot90(x, 1, axes=(1, 2))),
    ],
    ids=["blur1.0", "brightness+30%", "rotate90"],
)
def test_shifted_window_is_drift(shift, reference, embed_fn, test_images, mon_cfg) -> None:
    """The same 100 test images as the iid window above, shifted: only the shift can make the verdict differ."""
    summary = compute_drift(reference, _window(shift(test_images[:100]), embed_fn, reference), mon_cfg)
    assert summary.drift_detected and summary.status == "drift", summary.to_json()
    assert summary.drifted_signals and summary.message.startswith("drift in")
    assert all(s.p_value < mon_cfg.alpha / 3 for s in summary.drifted_signals)


def test_null_p_values_are_uniform(embed_fn, train_images, prepared_breastmnist) -> None:
    """Reference and window drawn from one pool of images (train + val, a fresh random split each time, so both
    sides are exchangeable even though the model fit the train images): the MMD p-values (one permutation test)
    are uniform (a K-S test against U(0, 1) does not reject); the softmax test (Bonferroni over a K-S test and a
    chi-squared test of the predicted-class counts) and the image-statistics test (Holm) are conservative by
    construction, not uniform, and stay at their level."""
    from scipy.stats import kstest

    from components.data.dataset import load_split
    from medpipe.imaging.features import FEATURE_COLUMNS, image_features
    from monitoring.detectors import embedding_mmd, image_statistics, softmax_shift

    names = ["malignant", "normal_or_benign"]
    pool = np.concatenate([train_images, load_split(prepared_breastmnist, "val").images])
    probs, emb = embed_fn(pool)
    feats = image_features(pool)
    rng = np.random.default_rng(7)
    mmd, soft, stats = [], [], []
    for i in range(50):
        order = rng.permutation(len(pool))
        ref, cur = order[:120], order[120:180]
        mmd.append(embedding_mmd(emb[ref], emb[cur], permutations=200, seed=i).p_value)
        soft.append(softmax_shift(probs[ref], probs[cur], names).p_value)
        stats.append(image_statistics(feats.iloc[ref], feats.iloc[cur], list(FEATURE_COLUMNS)).p_value)
    assert kstest(mmd, "uniform").pvalue > 0.01, sorted(mmd)
    for name, p_values in (("softmax", soft), ("image_statistics", stats)):  # at most the level (+ sampling error)
        assert np.mean(np.array(p_values) < 0.05) <= 0.12, (name, sorted(p_values))


def test_tiny_and_empty_windows_say_not_enough_data(reference, embed_fn, test_images, mon_cfg) -> None:
    for images in (test_images[:0], test_images[: mon_cfg.min_window - 1]):
        summary = compute_drift(reference, _window(images, embed_fn, reference), mon_cfg)
        assert summary.status == "not_enough_data" and not summary.drift_detected
        assert "not enough data" in summary.message and summary.signals == []
        assert '"status": "not_enough_data"' in summary.to_json()


def test_inference_log_window_with_feedback(reference, embed_fn, test_images, mon_cfg, tmp_path) -> None:
    """Rows written by the server's InferenceLog come back as a window; labels give the real accuracy."""
    from components.data.dataset import load_split
    from components.serving.inference_log import InferenceLog
    from medpipe.imaging.features import image_features
    from monitoring.window import read_log_window

    x = test_images[:80]
    labels = load_split(Path(reference.meta["prepared_dir"]), "test").labels[:80]
    probs, emb = embed_fn(x)
    feats = image_features(x).to_dict("records")
    log = InferenceLog(tmp_path / "inference.db")
    log.append(
        [
            {
                "request_id": f"r{i}",
                "model_version": "3",
                "predicted_class": reference.class_names[int(p.argmax())],
                "probabilities": p.tolist(),
                "class_names": reference.class_names,
                "features": feats[i],
                "embedding": emb[i],
            }
            for i, p in enumerate(probs)
        ]
    )
    for i in range(40):
        log.add_feedback(f"r{i}", int(labels[i]))
    window = read_log_window(tmp_path / "inference.db", reference, None, None)
    direct = window_from_log(log.read_window(), reference)
    assert len(window) == 80 and np.allclose(window["pc_0"], direct["pc_0"])
    assert np.allclose(window["pc_0"], reference.project(emb)[:, 0], atol=1e-4)
    summary = compute_drift(reference, window, mon_cfg, model_version="3")
    assert summary.labelled == 40 and summary.accuracy is not None
    expected = np.mean(probs[:40].argmax(axis=1) == labels[:40])
    assert summary.accuracy == pytest.approx(expected)
    assert summary.window_start is not None and "accuracy" in {s.name for s in summary.signals}
    assert "prob_1" in window and np.allclose(window["prob_1"], probs[:, 1])


def test_image_folder_window(tmp_path, reference, embed_fn, test_images) -> None:
    from PIL import Image

    for i, img in enumerate(test_images[:5]):
        Image.fromarray(np.repeat(img, 3, axis=2)).resize((56, 40)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.png").write_bytes(b"not an image")
    folder = load_image_folder(tmp_path, ImageSpec(28, 1))
    images, sizes, channels = folder.images, folder.sizes, folder.channels
    assert images.shape == (5, 28, 28, 1) and sizes[0] == (40, 56) and channels[0] == 3 and len(folder.names) == 5
    assert [name for name, _ in folder.skipped] == ["notes.png"] and "not an image file" in folder.skipped[0][1]
    frame = window_from_images(images, embed_fn, reference, sizes, channels)
    assert frame["aspect"].iloc[0] == pytest.approx(56 / 40) and "pc_7" in frame


def test_bad_files_in_a_monitored_folder_are_skipped_and_reported(tmp_path, reference, embed_fn, test_images) -> None:
    """A truncated PNG and a decompression bomb do not stop `monitor --images`: they are skipped and named."""
    import io

    from PIL import Image

    from medpipe.config import MonitoringConfig, ServingConfig
    from medpipe.settings import Settings
    from monitoring.check import Champion, current_window

    for i, img in enumerate(test_images[:6]):
        Image.fromarray(img[..., 0]).save(tmp_path / f"{i}.png")
    good = (tmp_path / "0.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    buf = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buf, format="PNG")
    (tmp_path / "bomb.png").write_bytes(buf.getvalue())
    champion = Champion(embed_fn, reference, "1", "models:/x@champion", ImageSpec(28, 1))
    settings, serving = Settings(home=tmp_path / "state"), ServingConfig(max_pixels=1_000_000)
    window = current_window(champion, MonitoringConfig(), settings, images_dir=tmp_path, serving=serving)
    assert len(window.frame) == 6 and window.images.shape == (6, 28, 28, 1)
    reasons = dict(window.skipped)
    assert set(reasons) == {"truncated.png", "bomb.png"}
    assert "truncated image" in reasons["truncated.png"] and "more than the limit" in reasons["bomb.png"]
