"""A network's batch as a fixed list of named tensors: what an exported or compiled graph takes.

A graph takes tensors only, so each network names the tensors it needs from its config alone
(``graph_input_names``) and :func:`feeds` builds them from a batch: the same names serve the ONNX
exporter, ONNX Runtime (which has no torch network) and ``torch.compile``. Character LMs run
inside the graph on ``lm{i}_ids``/``lm{i}_positions``; pooled LM embeddings average over a whole
input, so that graph also takes ``lm_pooled`` and returns ``lm_features`` beside the emissions.

Importing this module imports no torch: ONNX Runtime feeds NumPy arrays (see
:meth:`~tagsure.data.batching.EncodedSentences.arrays`), and a config may be the model file's
``model_config`` dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tagsure.data.batching import ArrayBatch
from tagsure.layers.char_text import CharLMConfig, CharLMText, sentence_char_arrays

EMISSIONS = "emissions"
LM_FEATURES = "lm_features"  # (B, T, D) the LMs' word vectors, pooled taggers only
LM_POOLED = "lm_pooled"  # (B, T, D) their mean over earlier occurrences in the input
WORD_INPUTS = ["words", "cases", "chars", "char_index", "mask"]
SUBWORD_INPUTS = ["input_ids", "attention_mask", "first", "last", "piece_word", "pieces", "mask"]

_STEPS = {0: "batch", 1: "steps"}
AXES: dict[str, dict[int, str]] = {
    "words": _STEPS,
    "cases": _STEPS,
    "chars": {0: "unique_tokens", 1: "word_chars"},
    "char_index": _STEPS,
    "mask": _STEPS,
    "input_ids": {0: "windows", 1: "subwords"},
    "attention_mask": {0: "windows", 1: "subwords"},
    "piece_word": {0: "windows", 1: "subwords"},
    "first": _STEPS,
    "last": _STEPS,
    "pieces": _STEPS,
    LM_POOLED: _STEPS,
    LM_FEATURES: _STEPS,
    EMISSIONS: _STEPS,
}


def lm_input_names(index: int) -> tuple[str, str]:
    return f"lm{index}_ids", f"lm{index}_positions"


def _setting(config: Any, name: str, default: Any) -> Any:
    """A config's setting, the config being a config object or its ``to_dict()``."""
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def pooled(config: Any) -> bool:
    lms = _setting(config, "char_lms", [])
    return bool(lms) and _setting(config, "char_lm_pooling", "none") != "none"


def pooled_width(config: Any) -> int:
    """D of a pooled tagger's ``lm_pooled`` input (the LMs' hidden sizes); 0 if not pooled."""
    lms = _setting(config, "char_lms", [])
    return sum(int(c["hidden_size"]) for c in lms) if pooled(config) else 0


def dynamic_axes(names: Sequence[str]) -> dict[str, dict[int, str]]:
    axes = {}
    for name in names:
        if name.startswith("lm") and name.endswith("_ids"):
            axes[name] = {0: "batch", 1: f"{name.removesuffix('_ids')}_chars"}
        elif name.startswith("lm") and name.endswith("_positions"):
            axes[name] = _STEPS
        else:
            axes[name] = AXES[name]
    return axes


def lm_texts(config: Any) -> list[CharLMText]:
    """What each of the config's character LMs reads (dictionary, direction), without weights."""
    return [CharLMText(CharLMConfig.from_dict(c)) for c in _setting(config, "char_lms", [])]


def feeds(
    batch: Any,
    names: Sequence[str],
    texts: Sequence[CharLMText] = (),
    pooled_features: Any = None,
) -> dict[str, Any]:
    """The named tensors of ``batch``: its fields, plus the character-LM inputs built from its
    tokens, plus ``pooled_features`` (B, T, D) for a pooled tagger. Tensors for a torch batch;
    for an :class:`~tagsure.data.batching.ArrayBatch`, NumPy arrays (``pooled_features`` as
    given)."""
    out: dict[str, Any] = {}
    lm_inputs: list[tuple[Any, Any]] = [sentence_char_arrays(t, batch.tokens) for t in texts]
    if texts and not isinstance(batch, ArrayBatch):
        import torch

        lm_inputs = [(torch.from_numpy(i), torch.from_numpy(p)) for i, p in lm_inputs]
    for name in names:
        if name == LM_POOLED:
            if pooled_features is None:
                raise ValueError("a pooled tagger's graph needs the pooled LM features")
            out[name] = pooled_features
        elif name.startswith("lm") and name.endswith(("_ids", "_positions")):
            index, field = name[2:].split("_", 1)
            inputs = lm_inputs[int(index)]
            out[name] = inputs[0] if field == "ids" else inputs[1]
        else:
            out[name] = getattr(batch, name)
    return out
