"""Explicit, strict loading of foreign checkpoints into any ``torch.nn.Module``.

The two failures this module exists to make impossible:

* a checkpoint saved from ``nn.DataParallel`` / DDP / ``torch.compile`` / Lightning carries
  ``module.`` / ``_orig_mod.`` / ``model.`` key prefixes, and the usual "fix"
  (``load_state_dict(..., strict=False)``) then loads *nothing* and says nothing;
* a head silently re-created with another size (a 3-label token head replaced by a
  30,522-way vocabulary head).

:func:`load_into` therefore detects wrapper prefixes, applies explicit renames, and then
refuses to load anything unless every model key is matched (or explicitly allowed to stay
unloaded), every checkpoint key is used (or explicitly ignored), and every shape agrees.
Failures list *all* problems at once in a readable table and leave the model untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from tagsure.storage.foreign.containers import read_checkpoint
from tagsure.storage.foreign.errors import CheckpointError, CheckpointMismatchError
from tagsure.storage.foreign.keys import (
    best_mapping,
    compile_renames,
    dtype_name,
    format_shape,
    matches,
    shape_of,
)
from tagsure.storage.foreign.report import KeyProblem, LoadReport

__all__ = ["load_into"]

logger = logging.getLogger(__name__)


def load_into(
    module: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    *,
    rename: Sequence[tuple[str, str]] = (),
    allow_missing: Sequence[str] = (),
    ignore_unexpected: Sequence[str] = (),
) -> LoadReport:
    """Load a foreign checkpoint into ``module``, strictly and explicitly.

    ``source`` is a ``.safetensors`` / ``.tagsure`` / ``.pt`` / ``.pth`` / ``.bin`` /
    ``.ckpt`` file, a Hugging Face model directory, or an in-memory state dict (or a
    checkpoint dict containing one). Wrapper prefixes (``module.``, ``_orig_mod.``,
    ``model.`` and combinations) are detected and removed or added; ``rename`` rules
    (regex, replacement) are then applied in order. ``allow_missing`` (fnmatch patterns of
    model keys) may stay unloaded and ``ignore_unexpected`` (fnmatch patterns of checkpoint
    keys, after prefix removal and renames) may be dropped; anything else that does not
    match, and any shape mismatch, raises :class:`CheckpointMismatchError` listing every
    problem, and the model is left unchanged. A checkpoint that matches no key at all
    always raises, whatever is allowed.

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
    for key in own:  # model order, so the table reads like the model
        if key not in by_target:
            if matches(key, allow_missing):
                report.missing.append(key)
            else:
                report.problems.append(
                    KeyProblem(
                        "missing",
                        key,
                        f"the model expects {format_shape(shape_of(own[key]))}; "
                        "not in the checkpoint",
                        expected_shape=shape_of(own[key]),
                    )
                )
            continue
        ckpt_key = by_target[key]
        value = raw.tensors[ckpt_key]
        expected, found = shape_of(own[key]), shape_of(value)
        if expected != found:
            report.problems.append(
                KeyProblem(
                    "shape",
                    key,
                    f"checkpoint has shape {format_shape(found)}, the model expects "
                    f"{format_shape(expected)}",
                    checkpoint_key=ckpt_key,
                    expected_shape=expected,
                    found_shape=found,
                )
            )
            continue
        want = own[key].dtype
        if value.dtype != want:
            if value.is_floating_point() and own[key].is_floating_point():
                report.dtype_casts[key] = (dtype_name(value.dtype), dtype_name(want))
                value = value.to(want)
            else:
                report.problems.append(
                    KeyProblem(
                        "dtype",
                        key,
                        f"checkpoint has dtype {dtype_name(value.dtype)}, the model expects "
                        f"{dtype_name(want)}",
                        checkpoint_key=ckpt_key,
                    )
                )
                continue
        to_load[key] = value
    for ckpt_key, target in mapping.targets.items():
        if target in model_keys:
            continue
        if matches(target, ignore_unexpected) or matches(ckpt_key, ignore_unexpected):
            report.unexpected.append(target)
        else:
            report.problems.append(
                KeyProblem(
                    "unexpected",
                    target,
                    f"checkpoint has {format_shape(shape_of(raw.tensors[ckpt_key]))}; "
                    "the model has no such key"
                    + (f" (checkpoint name {ckpt_key})" if ckpt_key != target else ""),
                    checkpoint_key=ckpt_key,
                    found_shape=shape_of(raw.tensors[ckpt_key]),
                )
            )
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
