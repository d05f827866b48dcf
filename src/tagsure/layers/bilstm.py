"""The sentence-level BiLSTM that turns token features into contextual vectors.

Why not ``nn.LSTM(bidirectional=True)`` over a PackedSequence: on CPU, packed input falls back
to a per-time-step loop whose backward pass re-zeroes the whole gate tensor at every step
(quadratic in sentence length; it was half of our training time). Instead each direction is a
unidirectional LSTM over the padded batch, which takes the fast fused kernel. The backward
direction reads each sentence reversed *within its own length*, so padding always comes after
the real tokens and can't leak into them: results are exact, whatever the batch's padding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tagsure.data.devices import native_bf16_cpu


def run_lstm(lstm: nn.Module, x: Any, *state: Any) -> Any:
    """``lstm(x, *state)``. Under CPU autocast the LSTM runs in bf16 only where the CPU has bf16
    instructions (oneDNN's bf16 LSTM is emulated, and several times slower, elsewhere), and in
    fp32 otherwise; outside autocast it is the plain call, so fp32 stays bit-identical."""
    if torch.is_autocast_enabled("cpu") and not getattr(x, "is_cuda", False):
        if torch.get_autocast_dtype("cpu") != torch.bfloat16 or not native_bf16_cpu():
            with torch.autocast("cpu", enabled=False):
                return lstm(x.float(), *state)
    return lstm(x, *state)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` steps of each row of x (B, T, D); padding stays put."""
    steps = torch.arange(x.shape[1]).unsqueeze(0)  # (1, T)
    last = lengths.unsqueeze(1) - 1  # (B, 1)
    index = torch.where(steps <= last, last - steps, steps)  # (B, T)
    return x.gather(1, index.unsqueeze(2).expand_as(x))


class BiLSTM(nn.Module):
    def __init__(self, input_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        for layer in range(layers):
            size = input_dim if layer == 0 else 2 * hidden
            self.forward_layers.append(nn.LSTM(size, hidden, batch_first=True))
            self.backward_layers.append(nn.LSTM(size, hidden, batch_first=True))
        self.between_layers = nn.Dropout(dropout)
        self.output_dim = 2 * hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D), lengths: (B,) -> (B, T, 2 * hidden); values on padding are meaningless
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers, strict=True)):
            if i:
                x = self.between_layers(x)
            ahead, _ = run_lstm(fwd, x)  # (B, T, H)
            behind, _ = run_lstm(bwd, reverse_padded(x, lengths))
            x = torch.cat([ahead, reverse_padded(behind, lengths)], dim=2)
        return x
