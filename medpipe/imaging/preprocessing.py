"""The preprocessing record that travels with the model: one JSON next to the checkpoint, the ONNX file
and the MLflow model. It is the single source of class names, channels, size, normalisation and decode
policy; export, serving, batch predict and monitoring read it and never repeat the values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from medpipe.imaging.conform import ImageSpec
from medpipe.imaging.policy import DecodePolicy
from medpipe.metrics import OperatingPoint

FILENAME = "preprocessing.json"


class Preprocessing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int  # prepared (stored) size; clients send images that are resized to this
    train_image_size: int  # the network's input size (resize inside the model when it differs)
    channels: int
    mean: list[float]  # per channel, on the 0..1 scale, from the training set
    std: list[float]
    class_names: list[str]
    model_name: str
    data_version: str | None = None
    decode: DecodePolicy = DecodePolicy()  # how files became pixels when the training data was prepared

    @property
    def spec(self) -> ImageSpec:
        """What every entry point conforms a file to before the model sees it."""
        return ImageSpec(self.image_size, self.channels, self.decode)

    tta: bool = False  # the graph averages the image and its horizontal flip (test-time augmentation)
    operating_point: OperatingPoint | None = None  # the served decision, chosen on validation after export

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Class indices (N,) of the served decision: the stored operating point, else argmax."""
        if self.operating_point is None:
            return np.asarray(probs).argmax(axis=1)
        return self.operating_point.predict(probs)

    def decision_fields(self, probs: np.ndarray) -> list[dict[str, float | None]]:
        """Per image: ``positive_probability`` (of the operating point's class) and the ``threshold`` it is held
        to (both None for an argmax decision)."""
        op = self.operating_point
        if op is None or op.threshold is None or op.positive_index is None:
            return [{"positive_probability": None, "threshold": None} for _ in range(len(probs))]
        return [{"positive_probability": float(p[op.positive_index]), "threshold": op.threshold} for p in probs]

    def save(self, directory: Path) -> Path:
        path = Path(directory) / FILENAME
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Preprocessing:
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        return cls.model_validate_json(path.read_text())
