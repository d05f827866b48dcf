"""Turn sentences into index arrays once, then cut padded tensor batches bucketed by length.

Sentences are stored flat (one array per feature plus offsets) so a corpus costs a few bytes per
token. Each distinct surface form is a "type" whose characters are stored once; a batch runs the
character encoder over its unique types only, not over every token.

Encoding and batching are NumPy: torch is imported only when a torch :class:`Batch` is made, so
ONNX Runtime (which takes :class:`ArrayBatch`, the same arrays by the same names) runs without it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tagsure.data.features import casing_class, normalise_word
from tagsure.data.vocab import Vocabulary
from tagsure.errors import InputError

if TYPE_CHECKING:
    import torch

    from tagsure.data.conll import Corpus

MAX_WORD_CHARS = 30  # longer tokens (URLs, chemical names) keep their first 30 characters


@dataclass
class Batch:
    words: torch.Tensor  # (B, T) word indices, 0 = padding
    cases: torch.Tensor  # (B, T) casing classes, 0 = padding
    chars: torch.Tensor  # (U, L) character indices of the batch's U unique tokens
    char_index: torch.Tensor  # (B, T) row of `chars` for each token
    mask: torch.Tensor  # (B, T) True on real tokens
    lengths: torch.Tensor  # (B,) sentence lengths, int64 on CPU
    tags: torch.Tensor | None  # (B, T) label indices, 0 on padding
    sentence_ids: np.ndarray  # (B,) positions of the sentences in the encoded corpus
    tokens: list[list[str]]  # the sentences' surface forms (character language models read them)
    features: torch.Tensor | None = None  # (B, T, D) precomputed word features, if cached

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


@dataclass
class ArrayBatch:
    """A batch as NumPy arrays named as the torch batch's tensors (``batch.mask``, ``batch.words``
    ...): what an ONNX graph is fed, built without torch."""

    arrays: dict[str, np.ndarray]  # (B, T), (U, L), (W, S) ... as the torch batch's fields
    sentence_ids: np.ndarray  # (B,) positions of the sentences in the encoded input
    tokens: list[list[str]] | None = None  # surface forms (character LMs read them)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None


def to_tensors(arrays: dict[str, np.ndarray | None]) -> dict[str, Any]:
    """The same arrays as torch tensors (sharing memory); None stays None."""
    import torch

    return {k: None if v is None else torch.from_numpy(v) for k, v in arrays.items()}


class Vectorizer:
    """Maps tokens and tags to indices with the vocabularies a model was trained with."""

    def __init__(
        self, words: Vocabulary, chars: Vocabulary, labels: Sequence[str], lowercase: bool = True
    ) -> None:
        self.words = words
        self.chars = chars
        self.labels = list(labels)
        self.label_index = {label: i for i, label in enumerate(self.labels)}
        self.lowercase = lowercase

    @classmethod
    def from_corpus(
        cls,
        corpus: Corpus,
        labels: Sequence[str],
        lowercase: bool = True,
        min_word_count: int = 1,
        extra_words: Sequence[str] = (),
    ) -> Vectorizer:
        """Word and character vocabularies of a training corpus; ``extra_words`` (already
        normalised: the words of a vectors file) follow the corpus's words in the vocabulary."""
        words: Counter[str] = Counter()
        chars: Counter[str] = Counter()
        for sentence in corpus.sentences:
            for token in sentence.tokens:
                words[normalise_word(token, lowercase)] += 1
                chars.update(token)
        vocabulary = Vocabulary.from_counts(words, min_word_count)
        if extra_words:
            new = [word for word in dict.fromkeys(extra_words) if word not in vocabulary]
            vocabulary = Vocabulary(vocabulary.items + new)
        return cls(
            vocabulary,
            Vocabulary.from_counts(chars),
            labels,
            lowercase,
        )

    @classmethod
    def from_document(
        cls, document: dict[str, Any], labels: Sequence[str], lowercase: bool
    ) -> Vectorizer:
        """The vectorizer a model file's (or ONNX export's) document describes."""
        vocabularies = document["vocabularies"]
        return cls(
            Vocabulary(vocabularies["words"]), Vocabulary(vocabularies["chars"]), labels, lowercase
        )

    def encode(
        self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None
    ) -> EncodedSentences:
        """Encode token lists (and their tags, already in the model's tag scheme)."""
        lengths, offsets = sentence_offsets(sentences)
        type_ids, types = surface_types(sentences)
        words = np.fromiter(
            (self.words.index(normalise_word(t, self.lowercase)) for t in types),
            np.int64,
            count=len(types),
        )[type_ids]
        cases = np.fromiter((casing_class(t) for t in types), np.int64, count=len(types))[type_ids]
        type_chars, type_lengths = char_table(self.chars, types)
        label_ids = label_indices(self.label_index, self.labels, tags, len(type_ids))
        return EncodedSentences(
            offsets, lengths, words, cases, type_ids, type_chars, type_lengths, label_ids, types
        )


@dataclass
class EncodedSentences:
    offsets: np.ndarray  # (N + 1,) start of each sentence in the flat arrays
    lengths: np.ndarray  # (N,)
    words: np.ndarray  # (tokens,)
    cases: np.ndarray  # (tokens,)
    type_ids: np.ndarray  # (tokens,) index of each token's surface form
    type_chars: np.ndarray  # (types, MAX_WORD_CHARS)
    type_lengths: np.ndarray  # (types,)
    labels: np.ndarray | None  # (tokens,)
    types: list[str]  # surface form of each type id
    # (tokens, D) word features computed once for the whole corpus (frozen character LMs)
    features: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def batch_lengths(self) -> np.ndarray:
        """(N,) what a batch pads to: words here (subwords for a subword encoding)."""
        return self.lengths

    def arrays(self, sentence_ids: Sequence[int] | np.ndarray) -> ArrayBatch:
        """These sentences as one padded batch of NumPy arrays (no torch, no cached features)."""
        ids = np.asarray(sentence_ids, dtype=np.int64)
        lengths = self.lengths[ids]
        mask, flat = token_slots(self.offsets[ids], lengths, int(lengths.max()))
        chars, char_index = batch_chars(
            self.type_ids[flat][mask], mask, self.type_chars, self.type_lengths
        )
        types = self.types
        tokens = [
            [types[t] for t in self.type_ids[start : start + n]]
            for start, n in zip(self.offsets[ids], lengths, strict=True)
        ]
        arrays = {
            "words": np.where(mask, self.words[flat], 0),
            "cases": np.where(mask, self.cases[flat], 0),
            "chars": chars,
            "char_index": char_index,
            "mask": mask,
            "lengths": lengths,
        }
        if self.labels is not None:
            arrays["tags"] = np.where(mask, self.labels[flat], 0)
        return ArrayBatch(arrays, ids, tokens)

    def batch(self, sentence_ids: Sequence[int] | np.ndarray) -> Batch:
        import torch

        array_batch = self.arrays(sentence_ids)
        arrays = array_batch.arrays
        features = None
        if self.features is not None:
            ids, mask = array_batch.sentence_ids, arrays["mask"]
            _, flat = token_slots(self.offsets[ids], self.lengths[ids], mask.shape[1])
            features = self.features[torch.from_numpy(flat)] * torch.from_numpy(mask)[..., None]
        return Batch(
            **to_tensors({"tags": None, **arrays}),
            sentence_ids=array_batch.sentence_ids,
            tokens=array_batch.tokens or [],
            features=features,
        )


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Group sentences of similar length so batches carry little padding.

    With ``rng`` the order is shuffled reproducibly: lengths get random tie-breaking within equal
    lengths, and the batches themselves come in random order. Without it (prediction) batches
    are sorted by length, longest first.
    """
    if rng is None:
        return padded_budget_batches(lengths, batch_size)
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


PREDICT_CELLS_PER_ROW = 64  # a prediction batch holds at most batch_size x 64 padded tokens


def padded_budget_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Prediction batches, longest first: at most ``batch_size`` sentences and at most
    ``batch_size * PREDICT_CELLS_PER_ROW`` padded tokens each, so that a few long inputs (whole
    documents) are not padded to in a batch of short ones, nor run 256 at a time."""
    order = np.argsort(-lengths, kind="stable")
    budget = batch_size * PREDICT_CELLS_PER_ROW
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(batch_size, budget // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def shuffled_batches(count: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of sentences in random order, lengths mixed (what ``transformers``' Trainer does
    unless ``group_by_length``): more padding than :func:`bucketed_batches`, but no batch is
    made only of very short or very long sentences."""
    order = rng.permutation(count)
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


def split_by_padding(
    ids: np.ndarray, lengths: np.ndarray, max_parts: int = 4, part_cost: int = 32
) -> list[np.ndarray]:
    """The sentences ``ids`` (of ``lengths``) as at most ``max_parts`` groups of similar length.

    A batch of mixed lengths pads every sentence to the longest; run as groups (micro-batches
    whose gradients add up to the batch's), it does the same optimizer step with less padding.
    Groups are runs of the batch sorted by length, chosen to minimise the padded cells (group
    size x longest in the group) plus ``part_cost`` cells per group for the extra pass. A batch
    of one length stays whole.
    """
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order].tolist()  # Python numbers: the loops below run per step
    n = len(order)
    # best[k][j]: least cost of the j shortest sentences in k groups; cut[k][j]: last group start
    best = [[math.inf] * (n + 1) for _ in range(max_parts + 1)]
    cut = [[0] * (n + 1) for _ in range(max_parts + 1)]
    best[0][0] = 0.0
    for k in range(1, max_parts + 1):
        before, costs, cuts = best[k - 1], best[k], cut[k]
        for j in range(1, n + 1):
            longest = sorted_lengths[j - 1]
            for i in range(k - 1, j):  # the last group is sorted[i:j]
                cost = before[i] + (j - i) * longest + part_cost
                if cost < costs[j]:
                    costs[j], cuts[j] = cost, i
    parts = min(range(1, max_parts + 1), key=lambda k: best[k][n])  # the first of the least
    groups, end = [], n
    for k in range(parts, 0, -1):
        start = cut[k][end]
        groups.append(ids[order[start:end]])
        end = start
    return groups[::-1]


def sentence_offsets(sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Tokens per sentence and the start of each sentence in the flat token arrays."""
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return lengths, offsets


def surface_types(sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    """The type id of every token (flat) and the distinct surface forms, in first-seen order."""
    type_index: dict[str, int] = {}
    type_ids = np.fromiter(
        (type_index.setdefault(t, len(type_index)) for s in sentences for t in s),
        np.int64,
        count=sum(len(s) for s in sentences),
    )
    return type_ids, list(type_index)


def char_table(chars: Vocabulary, types: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Character ids of each type, padded to MAX_WORD_CHARS, and their counts."""
    type_chars = np.zeros((len(types), MAX_WORD_CHARS), dtype=np.int64)
    type_lengths = np.zeros(len(types), dtype=np.int64)
    for i, token in enumerate(types):
        ids = chars.indices(token[:MAX_WORD_CHARS])
        type_chars[i, : len(ids)] = ids
        type_lengths[i] = len(ids)
    return type_chars, type_lengths


def label_indices(
    label_index: dict[str, int],
    labels: list[str],
    tags: Sequence[Sequence[str]] | None,
    count: int,
) -> np.ndarray | None:
    """The flat label ids of ``tags``; an unknown tag is an :class:`InputError`."""
    if tags is None:
        return None
    try:
        return np.fromiter((label_index[t] for seq in tags for t in seq), np.int64, count=count)
    except KeyError as err:
        raise InputError(f"tag {err.args[0]!r} is not one of the model's labels {labels}") from None


def token_slots(
    starts: np.ndarray, lengths: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (B, T) mask of real tokens and each slot's position in the flat arrays (0 on padding)."""
    positions = np.arange(width)
    mask = positions[None, :] < lengths[:, None]
    flat = np.where(mask, starts[:, None] + positions[None, :], 0)
    return mask, flat


def batch_chars(
    types: np.ndarray, mask: np.ndarray, type_chars: np.ndarray, type_lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The characters of a batch's unique types (U, L) and each token's row in them (B, T)."""
    unique_types, char_index = np.unique(types, return_inverse=True)
    char_width = max(int(type_lengths[unique_types].max()), 1)
    char_rows = np.zeros(mask.shape, dtype=np.int64)
    char_rows[mask] = char_index
    chars = np.ascontiguousarray(type_chars[unique_types, :char_width])
    return chars, char_rows
