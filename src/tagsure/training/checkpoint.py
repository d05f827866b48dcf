"""Training checkpoints for exact resume: model, best model, optimizer, RNG, loop state.

One safetensors file (``DIR/checkpoint.safetensors``), written atomically; tensors for the
weights and optimizer moments, and a JSON document in its metadata for everything else (the
run's config, the model document, the loop counters and history). No pickle: a checkpoint is as
safe to open as a model file. Resuming restores all of it, replays the interrupted epoch's batch
order from ``(seed, epoch)`` and skips the batches already done, so a CPU run killed and resumed
ends with the same weights, bit for bit, as one that never stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from tagsure.storage.atomic import atomic_write_bytes
from tagsure.storage.model_file import read_safetensors_header

CHECKPOINT_NAME = "checkpoint.safetensors"
_KEY = "tagsure_checkpoint"


@dataclass
class Checkpoint:
    document: dict[str, Any]  # config, out, model document, loop state, optimizer groups
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # an optimizer state_dict
    torch_rng: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. an LM's carried state


def save_checkpoint(directory: str | Path, checkpoint: Checkpoint) -> Path:
    tensors: dict[str, torch.Tensor] = {"rng.torch": checkpoint.torch_rng}
    tensors |= {f"model.{k}": v.contiguous() for k, v in checkpoint.model.items()}
    tensors |= {f"best.{k}": v.contiguous() for k, v in checkpoint.best_model.items()}
    tensors |= {f"extra.{k}": v.contiguous() for k, v in checkpoint.extra.items()}
    for index, values in checkpoint.optimizer["state"].items():
        for name, value in values.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).contiguous()
    document = dict(checkpoint.document, optimizer_groups=checkpoint.optimizer["param_groups"])
    path = Path(directory) / CHECKPOINT_NAME
    metadata = {_KEY: json.dumps(document)}
    atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata=metadata))
    return path


def load_checkpoint(directory: str | Path) -> Checkpoint:
    path = Path(directory) / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training checkpoint to resume from")
    metadata = read_safetensors_header(path).get("__metadata__") or {}
    if _KEY not in metadata:
        raise ValueError(f"{path}: not a tagsure training checkpoint")
    document = json.loads(metadata[_KEY])
    tensors = load_safetensors_bytes(path.read_bytes())
    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "best": {}, "extra": {}}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        kind, _, rest = name.partition(".")
        if kind in parts:
            parts[kind][rest] = tensor
        elif kind == "optimizer":
            index, _, key = rest.partition(".")
            state.setdefault(int(index), {})[key] = tensor
    groups = document.pop("optimizer_groups")
    for group in groups:  # JSON turned tuples into lists; optimizers compare some of them
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer = {"state": state, "param_groups": groups}
    return Checkpoint(
        document, parts["model"], parts["best"], optimizer, tensors["rng.torch"], parts["extra"]
    )
