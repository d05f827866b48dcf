"""Pretrained word vectors from a word2vec / GloVe / fastText text file, whole or capped.

The vocabulary of a tagger trained with vectors is its training words plus every word of the
vectors file (or of its first ``max_vectors`` rows: these files list words most frequent
first), as Lample et al. (2016) and Flair do: a word never seen in training but present in the
file is tagged with its vector, not as unknown. The rows end up in the model's embedding, so the
model file carries them and nothing is read at load time.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "v.txt"
    >>> _ = p.write_text("2 2\\nParis 1 2\\nparis 3 4\\n")
    >>> vectors = read_vectors(p)
    >>> vectors.words, vectors.matrix.tolist()
    (['paris'], [[1.0, 2.0]])
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from tagsure.data.features import normalise_word
from tagsure.errors import ConfigError, InputError

logger = logging.getLogger(__name__)


@dataclass
class WordVectors:
    """Normalised words, each once, and their rows: ``matrix`` is (len(words), dim) float32."""

    words: list[str]
    matrix: np.ndarray
    path: str = ""

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)


def read_vectors(
    path: str | os.PathLike[str], lowercase: bool = True, max_vectors: int | None = None
) -> WordVectors:
    """The words and rows of a word-vector text file, normalised as the word vocabulary is
    (lower case, digits as 0); where two rows normalise to one word, the first (more frequent)
    wins. ``max_vectors`` reads only the first rows. The ``count dim`` header of word2vec and
    fastText files is recognised and skipped; a row of another width is an
    :class:`InputError` naming the file and line."""
    if max_vectors is not None and max_vectors < 1:
        raise ConfigError(f"[data] max_vectors must be at least 1 (or unset), not {max_vectors}")
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    dim: int | None = None
    read = 0
    try:
        handle = open(path, encoding="utf-8", errors="strict")  # noqa: SIM115 - closed below
    except OSError as err:
        raise InputError(f"{path}: cannot read the word vectors ({err.strerror})") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                parts = line.rstrip().split(" ")
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue
                if len(parts) < 2 or not parts[0]:
                    raise InputError(f"{path}:{number}: expected a word and its numbers")
                if dim is None:
                    dim = len(parts) - 1
                elif len(parts) - 1 != dim:
                    raise InputError(
                        f"{path}:{number}: expected a word and {dim} numbers as on the first "
                        f"row, found {len(parts) - 1}"
                    )
                read += 1
                word = normalise_word(parts[0], lowercase)
                if word not in seen:
                    try:
                        rows.append(np.asarray(parts[1:], dtype=np.float32))
                    except ValueError:
                        raise InputError(f"{path}:{number}: a number that is not one") from None
                    seen.add(word)
                    words.append(word)
                if max_vectors is not None and read >= max_vectors:
                    break
        except UnicodeDecodeError as err:
            raise InputError(
                f"{path}: not valid UTF-8 near byte {err.start}; a binary word2vec file? "
                "convert it to the text format"
            ) from None
    if not rows or dim is None:
        raise InputError(f"{path}: no word vectors in the file")
    logger.info("%s: %d vectors of %d dimensions (%d rows read)", path, len(words), dim, read)
    return WordVectors(words, np.stack(rows), str(path))
