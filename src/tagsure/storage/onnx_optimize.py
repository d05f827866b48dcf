"""ONNX Runtime's transformer fusions (attention, LayerNorm, GELU) for a graph with a Hugging
Face encoder inside, kept only where its outputs match the unfused graph's.

``onnxruntime.transformers.optimizer`` recognises the attention that ``transformers`` writes
in its "eager" implementation (MatMul, scale, mask add, Softmax, MatMul) and replaces each
layer's with one ``Attention`` kernel; PyTorch's ``scaled_dot_product_attention`` traces into
a different pattern it does not fuse. So the encoder is traced with eager attention (the same
arithmetic), then fused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tagsure.layers.pretrained import PretrainedTransformer

logger = logging.getLogger(__name__)

TOLERANCE = 1e-4  # max |fused - unfused| emission difference on the tracing batch


def encoders(model: nn.Module) -> list[PretrainedTransformer]:
    return [m for m in model.modules() if isinstance(m, PretrainedTransformer)]


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Every Hugging Face encoder in ``model`` with eager attention, restored afterwards."""
    changed = []
    for encoder in encoders(model):
        hf: Any = encoder.model
        before = hf.config._attn_implementation
        if before != "eager":
            hf.set_attn_implementation("eager")
            changed.append((hf, before))
    try:
        yield
    finally:
        for hf, before in changed:
            hf.set_attn_implementation(before)


def fusion_shape(model: nn.Module) -> tuple[int, int] | None:
    """(heads, hidden size) of the model's one BERT-like encoder, or None: nothing to fuse."""
    found = encoders(model)
    if len(found) != 1:
        return None
    config = found[0].model.config
    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    return (int(heads), int(hidden)) if heads and hidden else None


def fuse(path: Path, shape: tuple[int, int], feeds: dict[str, np.ndarray]) -> bool:
    """Rewrite ``path`` with the transformer fusions if onnxruntime has them and the outputs on
    ``feeds`` stay within :data:`TOLERANCE`; True if it was rewritten."""
    try:
        import onnxruntime
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError:
        logger.info("onnxruntime.transformers is not installed; %s stays unfused", path)
        return False
    heads, hidden = shape
    fused_path = path.with_suffix(".fused.onnx")
    try:
        optimized = optimize_model(
            str(path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
        )
        optimized.save_model_to_file(str(fused_path))

        def run(file: Path) -> np.ndarray:
            session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
            used = {i.name for i in session.get_inputs()}  # the exporter drops unread inputs
            return np.asarray(session.run(None, {k: v for k, v in feeds.items() if k in used})[0])

        difference = float(np.abs(run(fused_path) - run(path)).max())
        if difference > TOLERANCE:
            logger.warning("fused graph differs by %.2g; keeping %s unfused", difference, path)
            return False
        logger.info("fused %s: %s", path, optimized.get_fused_operator_statistics())
        fused_path.replace(path)
        return True
    finally:
        fused_path.unlink(missing_ok=True)
