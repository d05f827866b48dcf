"""Which tensor is a checkpoint's classification head, and does it fit the labels?

A head of the wrong size (a vocabulary head where a 3-label head belongs) still "loads" in many
toolkits; these name and shape heuristics let ``inspect`` say so before the model is used.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tagsure.storage.foreign.report import fields_dict

# Heads that predict the vocabulary (masked / causal LM), matched on unwrapped names.
_LM_HEAD_PATTERNS = (
    *("lm_head.weight", "*.lm_head.weight", "lm_head.decoder.weight"),
    *("*predictions.decoder.weight", "generator_lm_head.weight", "embed_out.weight"),
)
# Module names that mark a final classification layer (HF `classifier`, tagsure `head`,
# CRF taggers' `emission(s)`, classic `hidden2tag`, RoBERTa's `classifier.out_proj`...).
_HEAD_WORDS = frozenset(
    {"classifier", "head", "emission", "emissions", "hidden2tag", "tag_projection", "score"}
    | {"out_proj", "output_layer"}
)
# Leaf layers that sit *before* the final projection inside a head.
_HIDDEN_LEAVES = frozenset({"dense", "LayerNorm", "layer_norm", "norm", "transform", "pooler"})
_FINAL_LEAVES = frozenset(
    {"out_proj", "emission", "emissions", "classifier", "hidden2tag", "head", "score", "proj"}
    | {"tag_projection", "output_layer", "linear", "out", "output", "fc"}
)


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of one stored tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def parameters(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return fields_dict(self, parameters=self.parameters)


@dataclass
class HeadInfo:
    """The layer that produces the final scores, as found by name and shape heuristics."""

    tensor: str
    output_size: int
    kind: str  # "token classification" or "LM head"
    crf_tensor: str | None = None
    crf_size: int | None = None

    @property
    def description(self) -> str:
        """Human summary, e.g. 'token classification head with 3 labels'."""
        if self.kind == "LM head":
            return f"LM head (vocabulary-sized output, {self.output_size:,})"
        return f"token classification head with {self.output_size} labels"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return fields_dict(self, description=self.description)


def find_heads(
    tensors: Sequence[TensorInfo], strip: str, vocab_size: int | None
) -> tuple[HeadInfo | None, list[HeadInfo]]:
    """The head (with its CRF, if any) and the other heads, keys read without ``strip``."""
    classifiers: list[tuple[int, int, TensorInfo]] = []
    lm_heads: list[TensorInfo] = []
    crf: TensorInfo | None = None
    for index, info in enumerate(tensors):
        name = info.name[len(strip) :]
        parts = name.split(".")
        if "transition" in name.lower():
            # CRF transition scores: square, one row per tag (sometimes + start/stop).
            # Masks of allowed transitions are buffers beside the scores, not the scores.
            square = len(info.shape) == 2 and info.shape[0] == info.shape[1]
            if square and "mask" not in name.lower() and info.dtype != "bool":
                crf = crf or info
            continue
        if len(info.shape) != 2 or parts[-1] != "weight":
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in _LM_HEAD_PATTERNS):
            lm_heads.append(info)
            continue
        modules = parts[:-1]
        if not _HEAD_WORDS.intersection(modules) or modules[-1] in _HIDDEN_LEAVES:
            continue
        rank = 0 if modules[-1] in _FINAL_LEAVES else 1
        classifiers.append((rank, -index, info))
    found: list[HeadInfo] = []
    if classifiers:  # the best-ranked classifier is the head; deeper hidden layers are not
        info = min(classifiers, key=lambda c: (c[0], c[1]))[2]
        is_vocab = vocab_size is not None and info.shape[0] == vocab_size and vocab_size > 1
        found.append(
            HeadInfo(info.name, info.shape[0], "LM head" if is_vocab else "token classification")
        )
    found.extend(HeadInfo(info.name, info.shape[0], "LM head") for info in lm_heads)
    if not found:
        return None, []
    head, others = found[0], found[1:]
    if crf is not None:
        head.crf_tensor, head.crf_size = crf.name, crf.shape[0]
    return head, others


def head_warnings(head: HeadInfo | None, n: int | None) -> list[str]:
    """What is wrong with ``head`` for ``n`` labels (nothing when either is unknown)."""
    warnings: list[str] = []
    if n is None:
        return warnings
    if head is None:
        warnings.append(
            f"the config lists {n} labels but no classification head tensor was recognised; "
            "check the tensor table for the final layer."
        )
        return warnings
    if head.kind == "LM head":
        warnings.append(
            f"the config lists {n} labels but the head {head.tensor} is an LM head "
            f"(vocabulary-sized output, {head.output_size:,}); these weights are not a token "
            f"classifier for these labels. Use the fine-tuned checkpoint, or train a head."
        )
    elif head.output_size != n:
        warnings.append(
            f"head {head.tensor} has {head.output_size} outputs but there are {n} labels; "
            "the head was trained for another label set. Do not use this model with these "
            "labels; retrain or use the matching labels."
        )
    if head.crf_size is not None and head.crf_size not in (n, n + 2):
        warnings.append(
            f"CRF {head.crf_tensor} is {head.crf_size} x {head.crf_size} but there are {n} "
            f"labels (expected {n} or {n + 2} with start/stop states)."
        )
    return warnings
