"""A string <-> index vocabulary with reserved padding and unknown entries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

PAD = "<pad>"
UNK = "<unk>"


class Vocabulary:
    """Index 0 is padding and index 1 the unknown symbol; both are stored with the model.

    Example:
        >>> vocab = Vocabulary.from_counts({"the": 3, "cat": 1}, min_count=2)
        >>> vocab.index("the"), vocab.index("cat")
        (2, 1)
    """

    pad_index = 0
    unk_index = 1

    def __init__(self, items: Sequence[str]) -> None:
        if list(items[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(items[:2])}")
        self.items: list[str] = list(items)
        self._index = {item: i for i, item in enumerate(self.items)}
        if len(self._index) != len(self.items):
            raise ValueError("a vocabulary holds each item once")

    @classmethod
    def from_counts(cls, counts: Counter[str] | dict[str, int], min_count: int = 1) -> Vocabulary:
        # Most frequent first, ties alphabetical, so the same counts always give the same indices.
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(
            [PAD, UNK] + [item for item, n in ordered if n >= min_count and item not in (PAD, UNK)]
        )

    @classmethod
    def build(cls, items: Iterable[str], min_count: int = 1) -> Vocabulary:
        return cls.from_counts(Counter(items), min_count)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: str) -> bool:
        return item in self._index

    def index(self, item: str) -> int:
        return self._index.get(item, self.unk_index)

    def indices(self, items: Iterable[str]) -> list[int]:
        get, unk = self._index.get, self.unk_index
        return [get(item, unk) for item in items]
