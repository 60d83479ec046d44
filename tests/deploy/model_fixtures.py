"""Small real model folders for the deploy and serving tests (a few quick epochs on BreastMNIST)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from components.data.dataset import load_split, read_manifest
from components.models.artifacts import save_model_dir
from components.models.registry import create_model
from components.preprocessing import Preprocessing

FACTORY = {"name": "cnn", "num_classes": 2, "in_channels": 1, "small_input": True}


def train_model_dir(prepared: Path, out_dir: Path, epochs: int = 3, seed: int = 0, mean_shift: float = 0.0) -> Path:
    """Train the small CNN a few epochs with a plain torch loop and save a model folder.

    ``mean_shift`` is added to the recorded mean after training: a deliberately wrong normalisation.
    """
    torch.manual_seed(seed)
    train = load_split(prepared, "train")
    x = torch.from_numpy(train.images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    mean, std = float(x.mean()), float(x.std())
    x = (x - mean) / std
    y = torch.from_numpy(train.labels)
    net = create_model(**FACTORY)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    weights = torch.tensor([len(y) / (2 * max(1, int((y == k).sum()))) for k in range(2)])
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx], weight=weights).backward()
            opt.step()
    net.eval()
    manifest = read_manifest(prepared)
    pre = Preprocessing(
        image_size=28,
        train_image_size=28,
        channels=1,
        mean=[mean + mean_shift],
        std=[std],
        class_names=list(manifest["class_names"]),
        model_name="cnn",
        data_version="test-data-v1",
    )
    return save_model_dir(out_dir, net, dict(FACTORY), pre)
