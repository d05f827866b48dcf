"""The character-LM file: its weights and config as a safetensors document.

A tagger copies its LMs into its own file, so this file is needed to train taggers, never to load.
"""

from __future__ import annotations

import os

from tagsure.layers.char_lm import CharLanguageModel, CharLMConfig
from tagsure.storage.document import DocumentKind, read_document, write_document

LM_FILE = DocumentKind(
    key="tagsure-char-lm",
    title="tagsure character LM",
    not_ours="not a tagsure character language model (train one with `tagsure lm train`)",
    version=1,
)


def save_lm(lm: CharLanguageModel, path: str | os.PathLike[str]) -> None:
    """Write ``lm`` to ``path`` atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in lm.state_dict().items()}
    write_document(path, LM_FILE, lm.config.to_dict(), tensors)


def load_lm(path: str | os.PathLike[str]) -> CharLanguageModel:
    """The LM saved at ``path``, in eval mode."""
    read = read_document(path, LM_FILE)
    lm = CharLanguageModel(CharLMConfig.from_dict(read.document))
    lm.load_state_dict(read.tensors, strict=True)
    return lm.eval()
