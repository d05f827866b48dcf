"""Learning-rate schedule for fine-tuning: linear warm-up, then linear decay to zero.

The rate is a pure function of the step, so a resumed run needs nothing beyond the step count
and each parameter group's base rate (``initial_lr``, saved with the optimizer's state).
"""

from __future__ import annotations

import torch


def warmup_linear(step: int, total: int, warmup_fraction: float) -> float:
    """Multiplier of the base rate at ``step`` (0-based) of ``total`` planned steps."""
    warmup = max(1, round(warmup_fraction * total))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def apply_schedule(
    optimizer: torch.optim.Optimizer, step: int, total: int, warmup_fraction: float
) -> None:
    factor = warmup_linear(step, total, warmup_fraction)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor
