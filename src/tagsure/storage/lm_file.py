"""The character language-model file: safetensors weights with the LM's config as JSON metadata.

Same rules as the tagger's model file: no pickle, atomic writes, a clear error for anything else.
A tagger trained with an LM copies the config and weights into its own file, so this file is
only needed to train taggers, never to load them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from tagsure.encoders.char_lm import CharLanguageModel, CharLMConfig
from tagsure.storage.atomic import atomic_write_bytes
from tagsure.storage.model_file import ModelFileError, read_safetensors_header

FORMAT_NAME = "tagsure-char-lm"
FORMAT_VERSION = 1


def save_lm(lm: CharLanguageModel, path: str | os.PathLike[str]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in lm.state_dict().items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        FORMAT_NAME: json.dumps(lm.config.to_dict(), ensure_ascii=False, sort_keys=True),
    }
    atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata=metadata))


def load_lm(path: str | os.PathLike[str]) -> CharLanguageModel:
    metadata = read_safetensors_header(path).get("__metadata__") or {}
    if metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path}: not a tagsure character language model (train one with `tagsure lm train`)"
        )
    if int(metadata.get("format_version", "0")) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer tagsure; upgrade tagsure")
    config = CharLMConfig.from_dict(json.loads(metadata[FORMAT_NAME]))
    lm = CharLanguageModel(config)
    lm.load_state_dict(load_safetensors_bytes(Path(path).read_bytes()), strict=True)
    return lm.eval()
