"""Rows of a table picked by an index tensor, with a backward pass that repeats bit for bit.

``table[index]`` (advanced indexing) back-propagates through ``index_put_(accumulate=True)``,
which on CPU with more than one thread adds large gradients with parallel atomic float adds:
the order of the additions, and so the low bits of the sum, change from run to run wherever an
index repeats (padding, a word twice in a batch). Two trainings with the same seed then end
with different weights. ``index_select`` gives the same forward values and back-propagates
through ``index_add_``, which adds in index order at any thread count.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def take_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]``: (N, *rest) rows at ``index`` (any shape S) -> (*S, *rest).

    Example:
        >>> take_rows(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[2, 0]])).tolist()
        [[[3.0], [1.0]]]
    """
    rows = table.index_select(0, index.reshape(-1))  # (prod(S), *rest)
    return rows.reshape(*index.shape, *table.shape[1:])


class _RowsIntoGrad(torch.autograd.Function):
    """Rows of ``module.weight`` at ``ids``; the backward adds their gradient into
    ``weight.grad`` in place (in index order, as ``index_add_`` adds) and hands autograd no
    dense gradient."""

    @staticmethod
    def forward(
        ctx: Any, weight: torch.Tensor, ids: torch.Tensor, module: GradIntoPlaceEmbedding
    ) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.module = module
        return nn.functional.embedding(ids, weight, module.padding_idx)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, None]:
        (ids,) = ctx.saved_tensors
        module: GradIntoPlaceEmbedding = ctx.module
        weight = module.weight
        flat = ids.reshape(-1)
        rows = grad.reshape(-1, grad.shape[-1]).to(weight.dtype)
        if module.padding_idx is not None:  # as nn.Embedding: the padding row learns nothing
            rows = rows.masked_fill((flat == module.padding_idx).unsqueeze(1), 0.0)
        if weight.grad is None:
            weight.grad = module.zeroed_spare()
        weight.grad.index_add_(0, flat, rows)
        return None, None, None


class GradIntoPlaceEmbedding(nn.Embedding):
    """An ``nn.Embedding`` whose backward adds each pass's gradient rows into ``weight.grad``.

    ``nn.Embedding``'s backward builds a dense zero gradient of the whole table on every
    backward pass, and autograd then adds it to ``weight.grad``: for a transformer's 30,522 x
    384 word table, 47 MB filled (in fresh pages) and 47 MB added per micro-batch. Here the rows
    a pass used are added in place, into one zeroed buffer a step: after ``zero_grad()`` sets
    ``weight.grad`` to None, the next backward zeroes the module's spare buffer and makes it the
    gradient again (so a reference kept to an old ``weight.grad`` sees it zeroed). Same forward,
    same gradient up to the order of float additions. Outside training mode, without autograd,
    when traced, exported or compiled, or with ``max_norm``/``scale_grad_by_freq``/``sparse``,
    it is ``nn.Embedding`` itself.
    """

    spare_grad: torch.Tensor | None = None

    @classmethod
    def replacing(cls, embedding: nn.Embedding) -> GradIntoPlaceEmbedding:
        """A module on ``embedding``'s own weight (same parameter, same state-dict key)."""
        new = cls.__new__(cls)
        new.__dict__.update(embedding.__dict__)
        return new

    def zeroed_spare(self) -> torch.Tensor:
        spare, weight = self.spare_grad, self.weight
        kind = (weight.shape, weight.dtype, weight.device)
        if spare is None or (spare.shape, spare.dtype, spare.device) != kind:
            spare = self.spare_grad = torch.zeros_like(weight)
        else:
            spare.zero_()
        return spare

    def train(self, mode: bool = True) -> GradIntoPlaceEmbedding:
        if not mode:  # a tagger done training keeps no gradient buffer
            self.spare_grad = None
        return super().train(mode)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        plain = (
            not (self.training and torch.is_grad_enabled() and self.weight.requires_grad)
            or self.max_norm is not None
            or self.scale_grad_by_freq
            or self.sparse
            or torch.compiler.is_compiling()
            or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export()
        )
        if plain:
            return super().forward(ids)
        return _RowsIntoGrad.apply(self.weight, ids, self)
