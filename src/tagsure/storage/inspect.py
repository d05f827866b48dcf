"""Look inside a model or checkpoint before trusting it: ``inspect_path(path)``.

Reports the config, labels, tensors, wrapper prefixes and, above all, whether the head fits
the labels, for tagsure files, safetensors, PyTorch files (weights only) and HF directories.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagsure.storage.document import DTYPES, read_safetensors_header
from tagsure.storage.foreign.containers import (
    checkpoint_errors,
    read_torch_file,
    resolve_weights_files,
    sniff,
)
from tagsure.storage.foreign.errors import CheckpointError
from tagsure.storage.foreign.heads import HeadInfo, TensorInfo, find_heads, head_warnings
from tagsure.storage.foreign.keys import (
    common_wrapper_prefixes,
    dtype_name,
    wrapper_names,
)
from tagsure.storage.foreign.report import fields_dict, jsonable
from tagsure.storage.model_card import card_lines
from tagsure.storage.onnx_file import looks_like_onnx, read_onnx

logger = logging.getLogger(__name__)

_TOKENIZER_FILES = (
    *("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"),
    *("vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model"),
    "tokenizer.model",
)

_LM_ARCHITECTURE_MARKERS = ("ForMaskedLM", "ForPreTraining", "ForCausalLM", "LMHeadModel")
_HIDDEN_SIZE_KEYS = ("hidden_size", "d_model", "n_embd", "dim")


@dataclass
class Inspection:
    """Everything :func:`inspect_path` found; ``format_text()`` / ``to_dict()`` to show it."""

    path: str
    kind: str
    files: list[str] = field(default_factory=list)
    container_key: str | None = None
    architecture: str | None = None
    config: dict[str, Any] | None = None
    labels: list[str] | None = None
    num_labels: int | None = None
    vocab_size: int | None = None
    hidden_size: int | None = None
    tag_scheme: str | None = None
    tagsure: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    tokenizer_files: list[str] | None = None
    extras: dict[str, str] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    head: HeadInfo | None = None
    other_heads: list[HeadInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def total_parameters(self) -> int:
        """Sum of elements over all tensors."""
        return sum(t.parameters for t in self.tensors)

    @property
    def head_matches_labels(self) -> bool | None:
        """Whether the head size equals the number of labels (None when either is unknown)."""
        if self.head is None or self.num_labels is None:
            return None
        return self.head.kind != "LM head" and self.head.output_size == self.num_labels

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``json.dumps(inspection.to_dict())`` works)."""
        return fields_dict(
            self,
            head_matches_labels=self.head_matches_labels,
            total_parameters=self.total_parameters,
            tensor_count=len(self.tensors),
        )

    def format_text(self) -> str:
        """Readable report: summary lines, the tensor table, then warnings."""
        out = [str(self.path)]

        def row(label: str, value: object) -> None:
            out.append(f"  {label:<15}: {value}")

        row("kind", self.kind)
        if len(self.files) > 1 or (self.files and self.files[0] != self.path):
            row("weights", ", ".join(Path(f).name for f in self.files))
        if self.container_key:
            row("container key", self.container_key)
        if self.architecture:
            row("architecture", self.architecture)
        if self.tag_scheme:
            row("tag scheme", self.tag_scheme)
        if self.labels is not None:
            shown = ", ".join(self.labels[:40]) + (" ..." if len(self.labels) > 40 else "")
            row("labels", f"{len(self.labels)} labels: {shown}")
        elif self.num_labels is not None:
            row("labels", f"{self.num_labels} labels (names unknown)")
        if self.vocab_size is not None:
            row("vocab size", f"{self.vocab_size:,}")
        if self.hidden_size is not None:
            row("hidden size", self.hidden_size)
        if self.tokenizer_files is not None:
            row("tokenizer", ", ".join(self.tokenizer_files) or "no tokenizer files")
        if self.tagsure:
            for key in ("format_version", "training", "metrics", "versions"):
                if self.tagsure.get(key) not in (None, {}, []):
                    row(key.replace("_", " "), _one_line(self.tagsure[key]))
            if self.tagsure.get("vocabularies"):
                row("vocabularies", _one_line(self.tagsure["vocabularies"]))
            card = self.tagsure.get("card")
            lines = card_lines(card) if isinstance(card, dict) else []
            row("model card", "" if lines else "none (saved before tagsure kept model cards)")
            out.extend(f"    {line}" for line in lines)
        if self.config:
            out.append("  config:")
            for key, value in self.config.items():
                out.append(f"    {key} = {_one_line(value)}")
        for key, value in self.extras.items():
            row(f"entry {key!r}", value)
        prefixes = " + ".join(f"{p} ({wrapper_names(p)})" for p in self.prefixes)
        row("wrapper prefix", prefixes or "none")
        if self.head:
            verdict = ""
            if self.head_matches_labels:
                verdict = f" (matches the {self.num_labels} labels)"
            elif self.head_matches_labels is False:
                verdict = f" (MISMATCH: {self.num_labels} labels)"
            row("head", f"{self.head.tensor}: {self.head.description}{verdict}")
            if self.head.crf_tensor:
                row("CRF", f"{self.head.crf_tensor} ({self.head.crf_size} x {self.head.crf_size})")
        else:
            row("head", "no classification or LM head tensor recognised")
        for other in self.other_heads:
            row("also", f"{other.tensor}: {other.description}")
        row("parameters", f"{self.total_parameters:,} in {len(self.tensors)} tensors")
        out.append("")
        out.append(_tensor_table(self.tensors))
        if self.warnings:
            out.append("")
            out.append("Warnings:")
            out.extend(f"  ! {w}" for w in self.warnings)
        return "\n".join(out)


def _one_line(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tensor_table(tensors: Sequence[TensorInfo]) -> str:
    if not tensors:
        return "  (no tensors)"
    shapes = [str(t.shape) for t in tensors]
    wn = max(len("tensor"), *(len(t.name) for t in tensors))
    ws = max(len("shape"), *(len(s) for s in shapes))
    wd = max(len("dtype"), *(len(t.dtype) for t in tensors))
    total = sum(t.parameters for t in tensors)
    wp = max(len("params"), len(f"{total:,}"))
    lines = [f"  {'tensor':<{wn}}  {'shape':<{ws}}  {'dtype':<{wd}}  {'params':>{wp}}"]
    lines.append("  " + "-" * (wn + ws + wd + wp + 6))
    for t, shape in zip(tensors, shapes, strict=True):
        lines.append(f"  {t.name:<{wn}}  {shape:<{ws}}  {t.dtype:<{wd}}  {t.parameters:>{wp},}")
    lines.append(f"  {'total':<{wn}}  {'':<{ws}}  {'':<{wd}}  {total:>{wp},}")
    return "\n".join(lines)


def _weights_infos(path: Path, result: Inspection) -> tuple[list[TensorInfo], str]:
    """Tensor infos of one weights file (a safetensors header alone) and its format."""
    try:
        fmt = sniff(path)
    except CheckpointError:
        fmt = "pytorch"  # let torch say what is wrong with it
    if fmt == "safetensors":
        with checkpoint_errors():  # a clear message when truncated
            header = read_safetensors_header(path)
        result.metadata.update(header.get("__metadata__") or {})
        return [
            TensorInfo(name, tuple(int(d) for d in entry["shape"]), _dtype(entry["dtype"]))
            for name, entry in header.items()
            if name != "__metadata__"
        ], fmt
    raw = read_torch_file(path)  # weights_only=True; refuses code pickles
    result.container_key = result.container_key or raw.container_key
    if raw.config_key:
        result.config = raw.config
    result.extras.update((k, v) for k, v in raw.extras.items() if k != raw.config_key)
    if raw.skipped_non_tensors:
        result.extras["(non-tensor entries in state dict)"] = ", ".join(
            raw.skipped_non_tensors[:10]
        )
    infos = [
        TensorInfo(k, tuple(int(d) for d in v.shape), dtype_name(v.dtype))
        for k, v in raw.tensors.items()
    ]
    return infos, fmt


def _dtype(code: str) -> str:
    return dtype_name(DTYPES[code]) if code in DTYPES else code.lower()


def _apply_tagsure_document(result: Inspection) -> None:
    result.kind = "tagsure model file"
    raw = result.metadata.pop("tagsure", None)
    if raw is None:
        result.warnings.append(
            "the file says it is a tagsure model but has no 'tagsure' metadata document; "
            "it was not written by tagsure's model_file (or was edited). Re-export the model."
        )
        return
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        result.warnings.append(
            f"the 'tagsure' metadata document is not valid JSON ({exc}); the file is damaged. "
            "Re-export the model."
        )
        return
    result.architecture = doc.get("architecture")
    config = doc.get("model_config")
    result.config = jsonable(config) if isinstance(config, Mapping) else None
    labels = doc.get("labels")
    if isinstance(labels, list):
        result.labels = [str(label) for label in labels]
        result.num_labels = len(result.labels)
    result.tag_scheme = doc.get("tag_scheme")
    summary = {k: v for k, v in doc.items() if k not in ("model_config", "labels", "vocabularies")}
    vocabularies = doc.get("vocabularies")
    if isinstance(vocabularies, Mapping):
        # Vocabularies can hold tens of thousands of entries: report sizes, not contents.
        summary["vocabularies"] = {
            str(k): (len(v) if isinstance(v, Sequence | Mapping) else jsonable(v))
            for k, v in vocabularies.items()
        }
    subwords = doc.get("subwords")
    if isinstance(subwords, Mapping) and isinstance(subwords.get("tokenizer_json"), str):
        # A pretrained encoder's tokenizer (megabytes of JSON): report what it is, not all of it.
        summary["subwords"] = dict(subwords) | {
            "tokenizer_json": _tokenizer_summary(subwords["tokenizer_json"])
        }
    result.tagsure = jsonable(summary)


def _tokenizer_summary(tokenizer_json: str) -> dict[str, Any]:
    try:
        spec = json.loads(tokenizer_json)
        model = spec.get("model") or {}
        vocab = model.get("vocab")
        return {
            "model": model.get("type"),
            "vocab_size": len(vocab) if isinstance(vocab, Sequence | Mapping) else None,
            "characters": len(tokenizer_json),
        }
    except (ValueError, AttributeError):
        return {"characters": len(tokenizer_json), "valid_json": False}


def _apply_hf_config(directory: Path, result: Inspection) -> None:
    config_path = directory / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"{config_path}: cannot read the model config ({exc}). Re-copy the model directory."
        ) from exc
    result.config = jsonable(config)
    architectures = config.get("architectures") or []
    result.architecture = ", ".join(str(a) for a in architectures) or config.get("model_type")
    result.vocab_size = _int_or_none(config.get("vocab_size"))
    result.hidden_size = next(
        (_int_or_none(config[k]) for k in _HIDDEN_SIZE_KEYS if k in config), None
    )
    is_lm = any(m in str(a) for a in architectures for m in _LM_ARCHITECTURE_MARKERS)
    id2label = config.get("id2label")
    if is_lm:
        return  # an LM config's default id2label/num_labels says nothing about its head
    if isinstance(id2label, Mapping) and id2label:
        try:
            ordered = sorted(id2label.items(), key=lambda kv: int(kv[0]))
        except (TypeError, ValueError):
            ordered = list(id2label.items())
        result.labels = [str(v) for _, v in ordered]
        result.num_labels = len(result.labels)
    declared = _int_or_none(config.get("num_labels"))
    if declared is not None:
        if result.num_labels is None:
            result.num_labels = declared
        elif declared != result.num_labels:
            result.warnings.append(
                f"config.json says num_labels={declared} but id2label has "
                f"{result.num_labels} entries; fix the config so both agree."
            )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _inspect_onnx(path: Path) -> Inspection:
    """An ONNX file: tagsure's export shows its model document; any other its weights."""
    contents = read_onnx(path)
    result = Inspection(str(path), "", files=[str(path)], metadata=dict(contents.metadata))
    ours = contents.document is not None
    result.tensors = [
        # tagsure's exported graph holds the network as `model`: show the network's own names
        TensorInfo(name.removeprefix("model.") if ours else name, shape, dtype)
        for name, shape, dtype in contents.tensors
    ]
    if ours:
        _apply_tagsure_document(result)
        decoder = (contents.document or {}).get("onnx", {}).get("decoder", {})
        result.extras["decoder"] = (
            f"{decoder.get('kind', 'unknown')}, run outside the graph (the graph's output is "
            "the emission scores; ONNX Runtime folds the emission layer into a MatMul)"
        )
        result.kind = "tagsure ONNX export (run it with `tagsure predict MODEL.onnx ...`)"
        if quantized := (contents.document or {}).get("onnx", {}).get("quantized"):
            result.extras["quantized"] = (
                f"{quantized} (dynamic: int8 weights, activations quantised per batch; its "
                "fingerprint is the quantised graph's)"
            )
    else:
        result.kind = f"ONNX model ({contents.producer or 'unknown producer'}), not from tagsure"
    return result


def inspect_path(path: str | Path) -> Inspection:
    """Inspect a model file, checkpoint or HF directory; never runs code from the file.

    >>> import tempfile, torch, safetensors.torch
    >>> p = Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> safetensors.torch.save_file({"classifier.weight": torch.zeros(3, 4)}, str(p))
    >>> inspect_path(p).head.description
    'token classification head with 3 labels'
    """
    path = Path(path)
    if path.is_dir():
        result = Inspection(str(path), "huggingface model directory")
        has_config = (path / "config.json").is_file()
        if has_config:
            _apply_hf_config(path, result)
        try:
            files = resolve_weights_files(path)
        except CheckpointError as exc:
            if not has_config:
                raise CheckpointError(
                    f"{path}: not a model directory (no config.json, no weights): {exc}"
                ) from None
            files = []
            result.warnings.append(f"no weights: {exc}")
        if not has_config:
            result.kind = "model directory (no config.json)"
            result.warnings.append("no config.json: labels and sizes are unknown.")
        result.tokenizer_files = [f for f in _TOKENIZER_FILES if (path / f).is_file()]
        result.files = [str(f) for f in files]
        for file in files:
            result.tensors.extend(_weights_infos(file, result)[0])
    elif path.is_file() and looks_like_onnx(path):
        result = _inspect_onnx(path)
    elif path.is_file():
        result = Inspection(str(path), "", files=[str(path)])
        result.tensors, fmt = _weights_infos(path, result)
        if result.metadata.get("format") == "tagsure":
            _apply_tagsure_document(result)
        else:
            result.kind = "safetensors" if fmt == "safetensors" else "pytorch checkpoint"
    else:
        raise CheckpointError(f"{path}: no such file or directory.")

    result.prefixes = common_wrapper_prefixes([t.name for t in result.tensors])
    result.head, result.other_heads = find_heads(
        result.tensors, "".join(result.prefixes), result.vocab_size
    )
    if not (result.head is None and "decoder" in result.extras):  # an ONNX graph names no head
        result.warnings.extend(head_warnings(result.head, result.num_labels))
    if result.prefixes:
        logger.info("%s: keys carry wrapper prefix %s", path, "".join(result.prefixes))
    # INFO, not WARNING: the warnings are part of the returned report, which callers show.
    for warning in result.warnings:
        logger.info("%s: %s", path, warning)
    return result
