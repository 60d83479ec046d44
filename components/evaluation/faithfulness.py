"""How faithful the served Grad-CAM maps are: ROAD (pytorch-grad-cam) on a bounded test sample, at registration.

ROAD (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for Attribution Methods") removes the
pixels a map ranks highest (MoRF) or lowest (LeRF), fills them by noisy linear imputation (so the model does not
react to the removal pattern itself), and measures the change of the explained class's probability, averaged over
removal shares. ``road = (LeRF change - MoRF change) / 2`` (``ROADCombined``): above 0 the map points at pixels the
prediction depends on; about 0 is what a random map scores; below 0 it points away from them.

The maps are those of :mod:`components.models.gradcam` (the ones ``/v1/explain`` returns). Imputation solves one
sparse system per image and share, so the sample is bounded (``registry.faithfulness_images``) and images larger than
``MAX_SIDE`` are scored at that side (the model resizes its input itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from components.data.dataset import load_split
from components.models.artifacts import load_model_dir
from components.models.gradcam import grad_cams, last_conv
from components.models.inference import InferenceModel, to_pixels

PERCENTILES = (20, 40, 60, 80)  # shares of pixels removed (ROAD's thresholds)
MAX_SIDE = 64  # imputation cost grows with the pixel count: larger images are scored at this side
METHOD = "captum LayerGradCam (last conv); ROAD MoRF/LeRF (pytorch-grad-cam), (LeRF - MoRF) / 2"


@dataclass(frozen=True)
class Faithfulness:
    road: float  # ROADCombined: (lerf - morf) / 2; > 0 faithful, ~0 random, < 0 misleading
    morf: float  # mean change of the explained class's probability, most relevant pixels removed first (< 0 good)
    lerf: float  # ... least relevant removed first (~0 good)
    n_images: int
    side: int  # image side the removals were done at
    seconds: float

    def as_tags(self) -> dict[str, str]:
        """Model-version tags (``explain.*``)."""
        return {
            "explain.road": f"{self.road:.4f}",
            "explain.road_morf": f"{self.morf:.4f}",
            "explain.road_lerf": f"{self.lerf:.4f}",
            "explain.road_images": str(self.n_images),
            "explain.road_percentiles": ",".join(map(str, PERCENTILES)),
            "explain.road_side": str(self.side),
            "explain.road_seconds": f"{self.seconds:.2f}",
            "explain.method": METHOD,
        }


class LinearImputer:
    """ROAD's noisy linear imputation (pytorch-grad-cam's ``NoisyLinearImputer``: the same equations, weights and
    noise), with the sparse system assembled in one vectorised COO step instead of ``lil_matrix`` item writes,
    which take ~80% of its time on small images. ``tests/registry/test_faithfulness.py`` checks both agree."""

    def __init__(self, noise: float = 0.01) -> None:
        self.noise = noise

    @staticmethod
    def system(mask: np.ndarray, img: np.ndarray) -> tuple[object, np.ndarray, np.ndarray]:
        """(A (N, N) csc, b (N, C), flat indices of the N pixels to fill) for a (H, W) keep-mask and (C, H, W) image."""
        from pytorch_grad_cam.metrics.road import neighbors_weights
        from scipy.sparse import coo_matrix

        h, w = mask.shape
        keep = mask.reshape(-1) > 0.5
        flat = img.reshape(img.shape[0], -1)
        missing = np.flatnonzero(~keep)
        r0, c0 = np.divmod(missing, w)
        slot = np.zeros(h * w, dtype=np.int64)
        slot[missing] = np.arange(len(missing))
        b = np.zeros((len(missing), img.shape[0]))
        weight_sum = np.ones(len(missing))
        rows, cols, vals = [np.arange(len(missing))], [np.arange(len(missing))], []
        for (dr, dc), wt in neighbors_weights:
            r, c = r0 + dr, c0 + dc
            inside = (r >= 0) & (c >= 0) & (r < h) & (c < w)
            weight_sum[~inside] -= wt
            ids = np.flatnonzero(inside)
            nbr = r[ids] * w + c[ids]
            known = keep[nbr]
            b[ids[known]] -= wt * flat[:, nbr[known]].T
            rows.append(ids[~known])
            cols.append(slot[nbr[~known]])
            vals.append(np.full(int((~known).sum()), wt))
        data = np.concatenate([-weight_sum, *vals])
        n = len(missing)
        a = coo_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsc()
        return a, b, missing

    def __call__(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from scipy.sparse.linalg import spsolve

        a, b, missing = self.system(mask.numpy(), img.numpy())
        filled = img.reshape(img.shape[0], -1).clone()
        if len(missing):
            res = torch.tensor(spsolve(a, b), dtype=torch.float).reshape(len(missing), -1)
            filled[:, missing] = res.t() + self.noise * torch.randn_like(res.t())
        return filled.reshape_as(img)


def _road(first: type, percentiles: tuple[int, ...]) -> object:
    """pytorch-grad-cam's ROAD averager (MoRF or LeRF over ``percentiles``) with :class:`LinearImputer`."""
    from pytorch_grad_cam.metrics.perturbation_confidence import AveragerAcrossThresholds, PerturbationConfidenceMetric

    def metric(percentile: int) -> PerturbationConfidenceMetric:
        return PerturbationConfidenceMetric(first(percentile, LinearImputer()))

    return AveragerAcrossThresholds(metric, list(percentiles))


class _Probabilities(nn.Module):
    """0..1 pixels -> class probabilities (what ROAD perturbs and reads); ROAD's imputation noise is on 0..1."""

    def __init__(self, model: InferenceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * 255.0)[0]


def road_score(
    model: InferenceModel, images: np.ndarray, heatmaps: np.ndarray, targets: np.ndarray, seed: int = 0
) -> tuple[float, float, float]:
    """(road, morf, lerf) of ``heatmaps`` (N, H, W) for uint8 (N, H, W, C) ``images`` and their explained classes."""
    from pytorch_grad_cam.metrics.perturbation_confidence import RemoveLeastRelevantFirst, RemoveMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = to_pixels(images) / 255.0
    cams = torch.from_numpy(np.ascontiguousarray(heatmaps, dtype=np.float32))[:, None]
    if x.shape[-1] > MAX_SIDE or x.shape[-2] > MAX_SIDE:
        x = nn.functional.interpolate(x, size=(MAX_SIDE, MAX_SIDE), mode="bilinear", antialias=True)
        cams = nn.functional.interpolate(cams, size=(MAX_SIDE, MAX_SIDE), mode="bilinear")
    wanted = [ClassifierOutputTarget(int(t)) for t in targets]
    probs = _Probabilities(model).eval()
    with torch.random.fork_rng():  # the imputation noise: reproducible, and the caller's RNG is left alone
        torch.manual_seed(seed)
        morf = _road(RemoveMostRelevantFirst, PERCENTILES)(x, cams[:, 0].numpy(), wanted, probs)
        lerf = _road(RemoveLeastRelevantFirst, PERCENTILES)(x, cams[:, 0].numpy(), wanted, probs)
    return float(np.mean((lerf - morf) / 2)), float(np.mean(morf)), float(np.mean(lerf))


def explanation_faithfulness(model_dir: Path, prepared: Path, n_images: int, seed: int = 0) -> Faithfulness | None:
    """ROAD of the Grad-CAM maps of ``model_dir``'s network on ``n_images`` test images drawn with ``seed``
    (None when ``n_images`` is 0 or the network has no convolution to explain)."""
    net, pre = load_model_dir(model_dir)
    if n_images <= 0 or last_conv(net) is None:
        return None
    start = time.perf_counter()
    test = load_split(Path(prepared), "test")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(test.images), size=min(n_images, len(test.images)), replace=False))
    images = np.asarray(test.images[pick])
    model = InferenceModel(net, pre).eval()
    _, targets, heatmaps = grad_cams(model, images)
    road, morf, lerf = road_score(model, images, heatmaps, targets, seed)
    side = min(MAX_SIDE, max(images.shape[1:3]))
    return Faithfulness(road, morf, lerf, len(images), side, time.perf_counter() - start)
