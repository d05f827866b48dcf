"""Rows of a table picked by an index tensor, with a backward pass that repeats bit for bit.

``table[index]`` (advanced indexing) back-propagates through ``index_put_(accumulate=True)``,
which on CPU with more than one thread adds large gradients with parallel atomic float adds:
the order of the additions, and so the low bits of the sum, change from run to run wherever an
index repeats (padding, a word twice in a batch). Two trainings with the same seed then end
with different weights. ``index_select`` gives the same forward values and back-propagates
through ``index_add_``, which adds in index order at any thread count.
"""

from __future__ import annotations

import torch


def take_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]``: (N, *rest) rows at ``index`` (any shape S) -> (*S, *rest).

    Example:
        >>> take_rows(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[2, 0]])).tolist()
        [[[3.0], [1.0]]]
    """
    rows = table.index_select(0, index.reshape(-1))  # (prod(S), *rest)
    return rows.reshape(*index.shape, *table.shape[1:])
