"""Grad-CAM explanations (captum) on the PyTorch flavour of the version being served.

The network comes from the same folder the ONNX graph was loaded from (``model.pt`` + ``model_config.json``:
a registered version, or a model folder after ``medpipe deploy``), so the map explains the served weights.
The Grad-CAM itself is :mod:`components.models.gradcam` (also behind ``medpipe predict --explain`` and the
faithfulness score of registration).
"""

from __future__ import annotations

from components.models.artifacts import load_model_dir
from components.models.gradcam import Explanation, grad_cam, last_conv
from components.models.inference import InferenceModel
from components.serving.images import InputError
from components.serving.model_source import LoadedModel

__all__ = ["Explanation", "grad_cam", "load_explainer"]


def load_explainer(model: LoadedModel) -> InferenceModel:
    """The served version's PyTorch network with its input preprocessing, or a 422 saying why there is none."""
    try:
        net, pre = load_model_dir(model.source_dir)
    except FileNotFoundError as err:
        raise InputError(
            422,
            "explain_unavailable",
            f"{model.name} v{model.version} has no PyTorch flavour beside its ONNX graph ({err}); serve a "
            "registered version or a model folder exported with `medpipe deploy`",
        ) from None
    if last_conv(net) is None:
        raise InputError(422, "explain_unavailable", "the network has no convolution layer for Grad-CAM")
    return InferenceModel(net, pre).eval()
