"""Words to subword ids for a pretrained transformer, in windows that never drop a word.

Each distinct word is tokenised once, on its own, exactly as ``is_pretokenized=True`` tokenises
it inside a sentence, so a corpus costs one tokenizer call per word type.

A sentence whose subwords don't fit the model's limit is cut into overlapping windows at word
boundaries. Every word is *owned* by exactly one window, the one where it sits nearest the
middle of the context, so the encoder returns exactly one vector per word: no truncation and no
word seen twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from tagsure.data.batching import (
    ArrayBatch,
    batch_chars,
    char_table,
    label_indices,
    sentence_offsets,
    surface_types,
    to_tensors,
    token_slots,
)
from tagsure.data.vocab import Vocabulary
from tagsure.errors import ConfigError

if TYPE_CHECKING:
    import torch

MAX_WORD_PIECES = 32  # a pathological token (a URL, a hash) keeps its first 32 subwords


@dataclass
class SubwordBatch:
    input_ids: torch.Tensor  # (W, S) subword ids of W windows, padded with the pad id
    attention_mask: torch.Tensor  # (W, S) 1 on real subwords (specials included)
    first: torch.Tensor  # (B, T) flat position (window * S + s) of each word's first subword
    last: torch.Tensor  # (B, T) flat position of each word's last subword
    piece_word: torch.Tensor  # (W, S) flat word slot (b * T + t) each subword belongs to, or B*T
    pieces: torch.Tensor  # (B, T) subwords per word (1 on padding, to divide safely)
    mask: torch.Tensor  # (B, T) True on real words
    lengths: torch.Tensor  # (B,) sentence lengths in words
    tags: torch.Tensor | None  # (B, T) label indices, 0 on padding
    sentence_ids: np.ndarray  # (B,) positions of the sentences in the encoded corpus
    chars: torch.Tensor | None = None  # (U, L) characters of the batch's U unique words
    char_index: torch.Tensor | None = None  # (B, T) row of `chars` for each word

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


@dataclass
class SubwordSettings:
    """What the model file stores besides the tokenizer itself."""

    prefix_ids: list[int]  # before every window, e.g. [CLS]
    suffix_ids: list[int]  # after every window, e.g. [SEP]
    pad_id: int
    unk_id: int  # stands for a word the tokenizer turns into nothing (a lone control character)
    max_length: int  # subwords per window, specials included (the model's position limit)
    # names of the special tokens (cls_token, pad_token, ...), for a tokenizer_config on export
    special_tokens: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SubwordVectorizer:
    """Maps word lists (and tags) to subword windows with the tokenizer a model was trained with."""

    def __init__(
        self,
        tokenizer_json: str,
        settings: SubwordSettings,
        labels: Sequence[str],
        chars: Vocabulary | None = None,
    ) -> None:
        from tokenizers import Tokenizer  # optional dependency: the `transformers` extra

        self.tokenizer_json = tokenizer_json
        self.tokenizer = Tokenizer.from_str(pretokenized_ready(tokenizer_json))
        self.settings = settings
        self.labels = list(labels)
        self.label_index = {label: i for i, label in enumerate(self.labels)}
        self.chars = chars
        self.content_length = (
            settings.max_length - len(settings.prefix_ids) - len(settings.suffix_ids)
        )
        if self.content_length < MAX_WORD_PIECES:
            raise ConfigError(
                f"windows of {settings.max_length} subwords leave {self.content_length} for "
                f"words; use max_subwords of at least {MAX_WORD_PIECES + 2}"
            )

    @classmethod
    def from_document(
        cls, document: dict[str, Any], labels: Sequence[str], with_chars: bool
    ) -> SubwordVectorizer:
        """The vectorizer a model file's (or ONNX export's) document describes; ``with_chars``
        when the model has a character encoder beside the subwords."""
        subwords = dict(document["subwords"])
        tokenizer_json = subwords.pop("tokenizer_json")
        chars = Vocabulary(document["vocabularies"]["chars"]) if with_chars else None
        return cls(tokenizer_json, SubwordSettings(**subwords), labels, chars)

    def word_pieces(self, words: Sequence[str]) -> list[list[int]]:
        """Subword ids of each word, tokenised as inside a pre-tokenised sentence."""
        encodings = self.tokenizer.encode_batch(
            [[w] for w in words], is_pretokenized=True, add_special_tokens=False
        )
        return [e.ids[:MAX_WORD_PIECES] or [self.settings.unk_id] for e in encodings]

    def encode(
        self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None
    ) -> EncodedSubwords:
        lengths, offsets = sentence_offsets(sentences)
        type_ids, types = surface_types(sentences)
        pieces = self.word_pieces(types)
        type_piece_counts = np.fromiter(map(len, pieces), np.int64, count=len(types))
        type_piece_offsets = np.zeros(len(types) + 1, dtype=np.int64)
        np.cumsum(type_piece_counts, out=type_piece_offsets[1:])
        type_pieces = np.fromiter(
            (i for p in pieces for i in p), np.int64, count=int(type_piece_offsets[-1])
        )
        label_ids = label_indices(self.label_index, self.labels, tags, len(type_ids))
        type_chars = type_lengths = None
        if self.chars is not None:
            type_chars, type_lengths = char_table(self.chars, types)
        return EncodedSubwords(
            self.settings,
            self.content_length,
            offsets,
            lengths,
            type_ids,
            type_piece_offsets,
            type_pieces,
            label_ids,
            type_chars,
            type_lengths,
        )


def pretokenized_ready(tokenizer_json: str) -> str:
    """The tokenizer, set up for word lists, with neither padding nor truncation.

    Byte-level BPE (RoBERTa, GPT-2) marks a word start with a leading space, which words given
    one by one only get with ``add_prefix_space`` (what ``transformers`` requires for
    ``is_split_into_words`` with these tokenizers).
    """
    spec = json.loads(tokenizer_json)

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "ByteLevel" and "add_prefix_space" in node:
                node["add_prefix_space"] = True
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(spec.get("pre_tokenizer"))
    # Saved tokenizers often pad or truncate (to 128, say); windows replace both here.
    spec["padding"] = None
    spec["truncation"] = None
    return json.dumps(spec)


def plan_windows(pieces: np.ndarray, limit: int) -> list[tuple[int, int, int, int]]:
    """Cut a sentence (subwords per word) into windows of at most ``limit`` subwords.

    Returns ``(start, end, own_start, own_end)`` word ranges: the window covers words
    ``start:end`` and owns ``own_start:own_end``; owned ranges tile the sentence. Consecutive
    windows overlap by about half a window, and a word in an overlap belongs to the window in
    whose half it falls, so every owned word has context on both sides where there is any.
    """
    n = len(pieces)
    ends = np.cumsum(pieces)  # ends[i]: subwords up to and including word i
    if n == 0 or ends[-1] <= limit:
        return [(0, n, 0, n)]
    starts = ends - pieces
    windows: list[tuple[int, int, int, int]] = []
    start = 0
    while True:
        end = int(np.searchsorted(ends, starts[start] + limit, side="right"))
        if end >= n:
            windows.append((start, n, 0, n))
            break
        # Next window starts half-way through this one (at least one word further on).
        middle = starts[start] + (ends[end - 1] - starts[start]) // 2
        windows.append((start, end, 0, 0))
        start = max(start + 1, int(np.searchsorted(starts, middle, side="left")))
    # Ownership: split each overlap [next start, this end) in the middle.
    owned: list[tuple[int, int, int, int]] = []
    own_start = 0
    for k, (start, end, _, _) in enumerate(windows):
        if k + 1 < len(windows):
            next_start = windows[k + 1][0]
            own_end = max(own_start, (next_start + end + 1) // 2)
        else:
            own_end = n
        owned.append((start, end, own_start, own_end))
        own_start = own_end
    return owned


@dataclass
class EncodedSubwords:
    settings: SubwordSettings
    content_length: int  # subwords per window for words (specials excluded)
    offsets: np.ndarray  # (N + 1,) start of each sentence in the flat word arrays
    lengths: np.ndarray  # (N,) words per sentence
    type_ids: np.ndarray  # (words,) index of each word's surface form
    type_piece_offsets: np.ndarray  # (types + 1,)
    type_pieces: np.ndarray  # (all pieces of all types,)
    labels: np.ndarray | None  # (words,)
    type_chars: np.ndarray | None = None  # (types, MAX_WORD_CHARS)
    type_lengths: np.ndarray | None = None  # (types,)
    _windows: dict[int, list[tuple[int, int, int, int]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    @cached_property
    def batch_lengths(self) -> np.ndarray:
        """(N,) subwords of each sentence, specials of one window included: what its windows pad
        to, so prediction groups sentences by it (words are a poor proxy: "Reuters" is one
        subword, "Ouagadougou" five)."""
        counts = np.diff(self.type_piece_offsets)[self.type_ids]  # (words,)
        ends = np.concatenate([[0], np.cumsum(counts)])
        specials = len(self.settings.prefix_ids) + len(self.settings.suffix_ids)
        return ends[self.offsets[1:]] - ends[self.offsets[:-1]] + specials

    def word_piece_counts(self, sentence: int) -> np.ndarray:
        types = self.type_ids[self.offsets[sentence] : self.offsets[sentence + 1]]
        return self.type_piece_offsets[types + 1] - self.type_piece_offsets[types]

    def windows(self, sentence: int) -> list[tuple[int, int, int, int]]:
        if sentence not in self._windows:
            counts = self.word_piece_counts(sentence)
            self._windows[sentence] = plan_windows(counts, self.content_length)
        return self._windows[sentence]

    def batch(self, sentence_ids: Sequence[int] | np.ndarray) -> SubwordBatch:
        """The windows of these sentences as one padded (W, S) tensor, and where each word's
        subwords sit in it (first, last, all), for the window that owns the word."""
        array_batch = self.arrays(sentence_ids)
        arrays = {"tags": None, "chars": None, "char_index": None, **array_batch.arrays}
        return SubwordBatch(**to_tensors(arrays), sentence_ids=array_batch.sentence_ids)

    def arrays(self, sentence_ids: Sequence[int] | np.ndarray) -> ArrayBatch:
        """:meth:`batch` as NumPy arrays (no torch)."""
        ids = np.asarray(sentence_ids, dtype=np.int64)
        lengths = self.lengths[ids]
        B, T = len(ids), max(int(lengths.max()), 1)
        prefix, suffix = self.settings.prefix_ids, self.settings.suffix_ids
        rows: list[list[int]] = []
        row_words: list[np.ndarray] = []  # per window: word slot of each subword, -1 = none
        window = np.zeros((B, T), dtype=np.int64)  # the window that owns each word
        first = np.zeros((B, T), dtype=np.int64)  # position in that window
        last = np.zeros((B, T), dtype=np.int64)
        pieces_per_word = np.ones((B, T), dtype=np.int64)
        for b, sentence in enumerate(ids):
            base = self.offsets[sentence]
            counts = self.word_piece_counts(int(sentence))
            pieces_per_word[b, : len(counts)] = counts
            for start, end, own_start, own_end in self.windows(int(sentence)):
                types = self.type_ids[base + start : base + end]
                piece_lists = [
                    self.type_pieces[self.type_piece_offsets[t] : self.type_piece_offsets[t + 1]]
                    for t in types
                ]
                slots = np.concatenate(
                    [np.full(len(p), b * T + start + j) for j, p in enumerate(piece_lists)]
                    or [np.zeros(0, np.int64)]
                )
                words = np.arange(start, end)
                owned = (words >= own_start) & (words < own_end)
                # Subwords of words this window doesn't own are context only.
                slots[~np.repeat(owned, counts[start:end])] = -1
                w = len(rows)
                content = np.concatenate(piece_lists) if piece_lists else np.zeros(0, np.int64)
                rows.append(prefix + content.tolist() + suffix)
                row_words.append(np.concatenate([np.full(len(prefix), -1), slots]))
                word_starts = len(prefix) + np.cumsum(counts[start:end]) - counts[start:end]
                own = slice(own_start - start, own_end - start)
                first[b, own_start:own_end] = word_starts[own]
                last[b, own_start:own_end] = (word_starts + counts[start:end] - 1)[own]
                window[b, own_start:own_end] = w
        S = max(len(r) for r in rows)
        input_ids = np.full((len(rows), S), self.settings.pad_id, dtype=np.int64)
        attention = np.zeros((len(rows), S), dtype=np.int64)
        piece_word = np.full((len(rows), S), B * T, dtype=np.int64)
        for w, (row, slots) in enumerate(zip(rows, row_words, strict=True)):
            input_ids[w, : len(row)] = row
            attention[w, : len(row)] = 1
            piece_word[w, : len(slots)] = np.where(slots >= 0, slots, B * T)
        first, last = window * S + first, window * S + last  # flat positions in (W * S)
        mask, flat = token_slots(self.offsets[ids], lengths, T)
        arrays = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "first": np.where(mask, first, 0),
            "last": np.where(mask, last, 0),
            "piece_word": piece_word,
            "pieces": pieces_per_word,
            "mask": mask,
            "lengths": lengths,
        }
        if self.labels is not None:
            arrays["tags"] = np.where(mask, self.labels[flat], 0)
        if self.type_chars is not None and self.type_lengths is not None:
            arrays["chars"], arrays["char_index"] = batch_chars(
                self.type_ids[flat][mask], mask, self.type_chars, self.type_lengths
            )
        return ArrayBatch(arrays, ids)
