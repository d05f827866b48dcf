"""A Hugging Face transformer as a word encoder: subword states pooled to one vector per word.

The transformer is built with ``AutoModel.from_config`` from the config dict stored in the model
file, so loading needs neither the original directory nor a network; its weights come from the
tagsure file like any other tensor. Windows of long sentences are encoded independently and
each word takes its vector from the window that owns it (see :mod:`tagsure.data.subwords`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from tagsure.data.subwords import SubwordBatch
from tagsure.errors import ConfigError, ModelFileError
from tagsure.layers.lookup import GradIntoPlaceEmbedding, take_rows

logger = logging.getLogger(__name__)

POOLINGS = ("first", "last", "mean", "first_last")
EVAL_WINDOWS = 32  # windows per forward pass at prediction (sorted: 32 ran ~1.15x faster than 64)
_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def build_transformer(hf_config: dict[str, Any]) -> nn.Module:
    """The bare transformer (no task head) an HF config dict describes, randomly initialised."""
    from transformers import AutoConfig, AutoModel

    values = dict(hf_config)
    model_type = values.pop("model_type", None)
    if not model_type:
        raise ModelFileError("the transformer config has no 'model_type'; it is not a HF config")
    config = AutoConfig.for_model(model_type, **values)
    model = AutoModel.from_config(config)
    # The sentence pooler is not used for tagging and absent from token-classification files.
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    words = model.get_input_embeddings()
    if type(words) is nn.Embedding:  # fine-tuning adds the word table's gradient in place
        model.set_input_embeddings(GradIntoPlaceEmbedding.replacing(words))
    return model


def num_layers(hf_config: dict[str, Any]) -> int:
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        if key in hf_config:
            return int(hf_config[key])
    raise ModelFileError(f"the transformer config names no layer count: {sorted(hf_config)}")


class ScalarMix(nn.Module):
    """Softmax-weighted sum of all hidden layers times a scale (Peters et al., 2018)."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(layers))
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        weights = self.weights.softmax(dim=0)  # (L,)
        stacked = torch.stack(states, dim=0)  # (L, W, S, H)
        return self.gamma * (weights[:, None, None, None] * stacked).sum(dim=0)


class PretrainedTransformer(nn.Module):
    def __init__(
        self, hf_config: dict[str, Any], pooling: str = "first", layer_mix: bool = False
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        model: Any = build_transformer(hf_config)  # a transformers PreTrainedModel
        self.model = model
        self.pooling = pooling
        self.layers = num_layers(hf_config)
        # embeddings + every layer's output
        self.mix = ScalarMix(self.layers + 1) if layer_mix else None
        hidden = int(model.config.hidden_size)
        self.output_dim = 2 * hidden if pooling == "first_last" else hidden

    def freeze(self) -> None:
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.model.parameters())

    def subword_states(
        self, input_ids: torch.Tensor, attention: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """(W, S) ids -> the (W, S, H) states the encoder uses: all layers to mix, or the last."""
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention,
            output_hidden_states=self.mix is not None,
        )
        if self.mix is not None:
            return tuple(outputs.hidden_states)
        return (outputs.last_hidden_state,)

    def forward(self, batch: SubwordBatch) -> torch.Tensor:
        """One vector per word: (B, T, output_dim)."""
        # A frozen transformer runs without autograd; the layer mix above it still learns.
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if self.training:
                layers = self.subword_states(batch.input_ids, batch.attention_mask)
            else:
                layers = self.sorted_states(batch.input_ids, batch.attention_mask)
        return self.pool(layers, vars(batch))

    def sorted_states(
        self, input_ids: torch.Tensor, attention: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """:meth:`subword_states` of (W, S) windows, ``EVAL_WINDOWS`` at a time, longest first,
        each group cut to its own longest window: the encoder computes no padding it can avoid.

        Padding positions come back as zeros; pooling reads only real subwords.
        """
        W, S = input_ids.shape
        lengths = attention.sum(dim=1)  # (W,) windows are padded on the right
        order = torch.argsort(lengths, descending=True, stable=True)
        full: list[torch.Tensor] = []
        for group in order.split(EVAL_WINDOWS):
            width = int(lengths[group[0]])
            part = self.subword_states(input_ids[group, :width], attention[group, :width])
            if not full:
                full = [p.new_zeros(W, S, p.shape[2]) for p in part]
            for whole, states in zip(full, part, strict=True):
                whole[group, :width] = states  # (G, width, H) into (W, S, H)
        return tuple(full)

    def pool(self, layers: tuple[torch.Tensor, ...], inputs: Mapping[str, Any]) -> torch.Tensor:
        """One vector per word (B, T, output_dim) from the windows' subword states and the
        word positions of a batch's named tensors (``first``, ``last``, ``piece_word``, ...)."""
        states = self.mix(layers) if self.mix is not None else layers[0]  # (W, S, H)
        W, S, H = states.shape
        B, T = inputs["mask"].shape
        flat = states.reshape(W * S, H)  # (W * S, H)
        if self.pooling == "first":
            return take_rows(flat, inputs["first"])  # (B, T, H)
        if self.pooling == "last":
            return take_rows(flat, inputs["last"])
        if self.pooling == "first_last":
            return torch.cat(
                [take_rows(flat, inputs["first"]), take_rows(flat, inputs["last"])], dim=2
            )  # (B, T, 2H)
        # mean: sum each word's subwords into its slot (one spare slot for everything else)
        sums = flat.new_zeros(B * T + 1, H).index_add_(0, inputs["piece_word"].reshape(-1), flat)
        return sums[: B * T].reshape(B, T, H) / inputs["pieces"].unsqueeze(2)

    def layer_of(self, name: str) -> int:
        """Depth of a transformer parameter: 0 for embeddings, i + 1 for layer i, top otherwise."""
        match = _LAYER.search(name)
        if match:
            return int(match.group(1)) + 1
        if "embed" in name:
            return 0
        return self.layers + 1
