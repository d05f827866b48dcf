"""The resume state of a training run: model, best model, optimizer, RNG and loop state.

Not the foreign checkpoints of :mod:`tagsure.storage.foreign`: tagsure's own file for
continuing a run exactly. One safetensors document written atomically, tensors plus a JSON
document (config, model document, counters, history) in its metadata: no pickle, so it is as
safe to open as a model file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tagsure.errors import ModelFileError
from tagsure.storage.document import DocumentKind, read_document, write_document

#: The file name inside a run's resume directory (kept from when it was called a checkpoint).
RESUME_STATE_NAME = "checkpoint.safetensors"
RESUME_STATE = DocumentKind(
    key="tagsure_checkpoint",
    title="tagsure resume state",
    not_ours="not a tagsure training checkpoint",
    version=None,  # files have always been recognised by their key alone
    sort_keys=False,  # history records keep their field order when the log is rewritten
)


@dataclass
class ResumeState:
    document: dict[str, Any]  # config, out, model document, loop state, optimizer groups
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # an optimizer state_dict
    torch_rng: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. an LM's carried state


def save_resume_state(directory: str | Path, state: ResumeState) -> Path:
    """Write ``state`` to ``directory/checkpoint.safetensors`` atomically; returns the path."""
    tensors: dict[str, torch.Tensor] = {"rng.torch": state.torch_rng}
    tensors |= {f"model.{k}": v.contiguous() for k, v in state.model.items()}
    tensors |= {f"best.{k}": v.contiguous() for k, v in state.best_model.items()}
    tensors |= {f"extra.{k}": v.contiguous() for k, v in state.extra.items()}
    for index, values in state.optimizer["state"].items():
        for name, value in values.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).contiguous()
    document = dict(state.document, optimizer_groups=state.optimizer["param_groups"])
    path = Path(directory) / RESUME_STATE_NAME
    write_document(path, RESUME_STATE, document, tensors)
    return path


def load_resume_state(directory: str | Path) -> ResumeState:
    """The resume state in ``directory``, its tensors memory-mapped (copy-on-write)."""
    path = Path(directory) / RESUME_STATE_NAME
    if not path.exists():
        raise ModelFileError(
            f"{path}: no training checkpoint to resume from; give the folder --checkpoint-dir wrote"
        )
    read = read_document(path, RESUME_STATE)
    document, tensors = read.document, read.tensors
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
    return ResumeState(
        document, parts["model"], parts["best"], optimizer, tensors["rng.torch"], parts["extra"]
    )
