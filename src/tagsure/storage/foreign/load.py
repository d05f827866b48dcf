"""Explicit, strict loading of foreign checkpoints into any ``torch.nn.Module``.

The usual fix for wrapper-prefixed keys, ``strict=False``, silently loads nothing, and a head
of another size can be silently re-created. :func:`load_into` matches prefixes and renames,
then loads only if every key is matched or explicitly allowed and every shape agrees;
otherwise it lists every problem at once and leaves the model untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from tagsure.storage.foreign.containers import read_checkpoint
from tagsure.storage.foreign.errors import CheckpointError
from tagsure.storage.foreign.keys import (
    best_mapping,
    compile_renames,
    dtype_name,
    matches,
)
from tagsure.storage.foreign.report import CheckpointMismatchError, KeyProblem, LoadReport

logger = logging.getLogger(__name__)


def load_into(
    module: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    *,
    rename: Sequence[tuple[str, str]] = (),
    allow_missing: Sequence[str] = (),
    ignore_unexpected: Sequence[str] = (),
) -> LoadReport:
    """Load a checkpoint file, HF directory or state dict into ``module``, strictly.

    ``rename`` rules (regex, replacement) apply after the wrapper prefixes are matched;
    ``allow_missing`` (fnmatch, model keys) may stay unloaded and ``ignore_unexpected``
    (checkpoint keys, renamed) may be dropped. Anything else, and a checkpoint matching no key
    at all, raises :class:`CheckpointMismatchError` with every problem.

    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 3))
    >>> wrapped = nn.DataParallel(nn.Sequential(nn.Linear(2, 3)))
    >>> report = load_into(model, wrapped.state_dict())
    >>> report.prefix_stripped, report.loaded_tensors
    ('module.', 2)
    """
    raw = read_checkpoint(source)
    rules = compile_renames(rename)

    own = module.state_dict()
    model_keys = set(own)
    mapping = best_mapping(list(raw.tensors), model_keys, rules)
    report = LoadReport(
        source=raw.source,
        kind=raw.kind,
        model=type(module).__name__,
        container_key=raw.container_key,
        prefix_stripped=mapping.strip,
        prefix_added=mapping.add,
        renamed=mapping.renamed,
        model_tensors=len(own),
        model_elements=sum(t.numel() for t in own.values()),
        checkpoint_tensors=len(raw.tensors),
        skipped_non_tensors=raw.skipped_non_tensors,
    )
    by_target = {target: key for key, target in mapping.targets.items()}

    to_load: dict[str, Tensor] = {}
    problems = report.problems
    for key, tensor in own.items():  # model order, so the table reads like the model
        expected = tuple(tensor.shape)
        ckpt_key = by_target.get(key)
        if ckpt_key is None:
            if matches(key, allow_missing):
                report.missing.append(key)
            else:
                detail = f"the model expects {expected}; not in the checkpoint"
                problems.append(KeyProblem("missing", key, detail, expected_shape=expected))
            continue
        value = raw.tensors[ckpt_key]
        found = tuple(value.shape)
        if expected != found:
            detail = f"checkpoint has shape {found}, the model expects {expected}"
            problems.append(KeyProblem("shape", key, detail, ckpt_key, expected, found))
            continue
        want = tensor.dtype
        if value.dtype != want:
            if not (value.is_floating_point() and tensor.is_floating_point()):
                detail = (
                    f"checkpoint has dtype {dtype_name(value.dtype)}, the model expects "
                    f"{dtype_name(want)}"
                )
                problems.append(KeyProblem("dtype", key, detail, ckpt_key))
                continue
            report.dtype_casts[key] = (dtype_name(value.dtype), dtype_name(want))
            value = value.to(want)
        to_load[key] = value
    for ckpt_key, target in mapping.targets.items():
        if target in model_keys:
            continue
        if matches(target, ignore_unexpected) or matches(ckpt_key, ignore_unexpected):
            report.unexpected.append(target)
            continue
        found = tuple(raw.tensors[ckpt_key].shape)
        detail = f"checkpoint has {found}; the model has no such key"
        if ckpt_key != target:
            detail += f" (checkpoint name {ckpt_key})"
        problems.append(KeyProblem("unexpected", target, detail, ckpt_key, found_shape=found))
    if mapping.score == 0:
        # The strict=False trap: nothing lines up. Never a success, whatever was allowed.
        sample = ", ".join(list(raw.tensors)[:3]) or "(no tensors)"
        model_sample = ", ".join(list(own)[:3]) or "(no tensors)"
        report.problems.insert(
            0,
            KeyProblem(
                "match",
                "(all keys)",
                f"0 of {len(raw.tensors)} checkpoint tensors match any of the model's "
                f"{len(own)} keys (checkpoint: {sample}...; model: {model_sample}...)",
            ),
        )

    if report.problems:
        message = report.format_table()
        # INFO: the exception carries the full table; logging it loudly would print it twice.
        logger.info("refused to load %s: %d problem(s)", raw.source, len(report.problems))
        raise CheckpointMismatchError(message, report)

    # Assemble a complete state dict (current values for allowed-missing keys) so the copy
    # goes through load_state_dict(strict=True) and its per-module hooks, never strict=False.
    full = dict(own)
    full.update(to_load)
    try:
        with torch.no_grad():
            module.load_state_dict(full, strict=True)
    except RuntimeError as exc:  # e.g. a custom _load_from_state_dict hook objecting
        raise CheckpointError(
            f"{raw.source}: load_state_dict rejected the matched tensors ({exc})."
        ) from exc
    report.loaded_tensors = len(to_load)
    report.loaded_elements = sum(t.numel() for t in to_load.values())
    logger.info("%s", report.format_table())
    return report
