"""Independent per-token classification: cross-entropy loss and arg-max decoding."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Softmax(nn.Module):
    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.num_labels = num_labels

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Summed over tokens, like the CRF's sentence-level loss, so learning rates transfer.
        # Masked by multiplication, not emissions[mask]: boolean indexing has a data-dependent
        # shape, which breaks a compiled graph (torch.compile(fullgraph=True) refuses it).
        losses = F.cross_entropy(emissions.transpose(1, 2), tags, reduction="none")  # (B, T)
        return (losses * mask).sum()

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return emissions.argmax(dim=2) * mask  # (B, T)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return emissions.softmax(dim=2) * mask.unsqueeze(2)  # (B, T, K)
