"""The character language-model file: safetensors weights with the LM's config as JSON metadata.

Same rules as the tagger's model file: no pickle, atomic writes, a clear error for anything else.
A tagger trained with an LM copies the config and weights into its own file, so this file is
only needed to train taggers, never to load them.
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
FORMAT_NAME = LM_FILE.key
FORMAT_VERSION = 1


def save_lm(lm: CharLanguageModel, path: str | os.PathLike[str]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in lm.state_dict().items()}
    write_document(path, LM_FILE, lm.config.to_dict(), tensors)


def load_lm(path: str | os.PathLike[str]) -> CharLanguageModel:
    read = read_document(path, LM_FILE)
    lm = CharLanguageModel(CharLMConfig.from_dict(read.document))
    lm.load_state_dict(read.tensors, strict=True)
    return lm.eval()
