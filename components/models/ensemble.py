"""A seed ensemble as one network: N members of the same config, probabilities averaged.

:class:`EnsembleClassifier` keeps the :class:`~components.models.registry.Classifier` interface (``embed``,
``head``, ``forward``), so :class:`~components.models.inference.InferenceModel`, the ONNX export, the parity
check and Grad-CAM take it as they take one network:

- ``embed(x)`` is the members' embeddings side by side (N, members x D): drift monitoring reads that output;
- ``head(e)`` returns ``log(mean_i softmax(head_i(e_i)))``, so ``softmax(head(embed(x)))`` is exactly the mean
  of the members' probabilities (test-time flips, when on, average on top of that).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from components.models.registry import Classifier


class _MeanProbabilityHead(nn.Module):
    def __init__(self, heads: Sequence[nn.Module], dims: Sequence[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.dims = list(dims)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        parts = torch.split(embedding, self.dims, dim=1)
        probs = torch.stack([torch.softmax(h(e), dim=1) for h, e in zip(self.heads, parts, strict=True)]).mean(0)
        return torch.log(probs.clamp_min(1e-30))  # softmax of this is the mean probability itself


class EnsembleClassifier(Classifier):
    """N trained :class:`Classifier` members behind one ``embed``/``head``; eval-only (the members are trained)."""

    def __init__(self, members: Sequence[Classifier]) -> None:
        if len(members) < 1:
            raise ValueError("an ensemble needs at least one member")
        nn.Module.__init__(self)
        self.members = nn.ModuleList(members)
        self.embedding_dim = sum(m.embedding_dim for m in members)
        self.head = _MeanProbabilityHead([m.head for m in members], [m.embedding_dim for m in members])

    @property
    def backbone(self) -> nn.Module:  # the members' backbones (what Grad-CAM and freezing look for)
        return nn.ModuleList([m.backbone for m in self.members])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed(x) for m in self.members], dim=1)

    def member_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(members, N, K) each member's own softmax on normalised input ``x``."""
        return torch.stack([torch.softmax(m(x), dim=1) for m in self.members])
