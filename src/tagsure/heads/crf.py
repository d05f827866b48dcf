"""Linear-chain CRF: negative log-likelihood, Viterbi decoding and token marginals, batched.

All three run over the whole batch at once; the only Python loop is over time steps, which the
recurrence needs. Transitions that the tag scheme forbids (``I-PER`` after ``O`` in BIOES, say)
are masked with a large negative score, so decoding can never produce an ill-formed sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

FORBIDDEN = -1e4  # finite, so log-sum-exp stays finite when a whole row is masked


class CRF(nn.Module):
    def __init__(
        self,
        num_labels: int,
        allowed_transitions: Sequence[tuple[int, int]] | None = None,
        allowed_starts: Sequence[int] | None = None,
        allowed_ends: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.transition_mask: torch.Tensor
        self.start_mask: torch.Tensor
        self.end_mask: torch.Tensor
        self.transitions = nn.Parameter(torch.zeros(num_labels, num_labels))  # (from, to)
        self.start = nn.Parameter(torch.zeros(num_labels))
        self.end = nn.Parameter(torch.zeros(num_labels))
        # The constraints are buffers, saved with the weights: the file says what was forbidden.
        self.register_buffer("transition_mask", _mask2d(num_labels, allowed_transitions))
        self.register_buffer("start_mask", _mask1d(num_labels, allowed_starts))
        self.register_buffer("end_mask", _mask1d(num_labels, allowed_ends))

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        trans = self.transitions.masked_fill(~self.transition_mask, FORBIDDEN)
        start = self.start.masked_fill(~self.start_mask, FORBIDDEN)
        end = self.end.masked_fill(~self.end_mask, FORBIDDEN)
        return trans, start, end

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summed negative log-likelihood of ``tags``. emissions (B, T, K), tags/mask (B, T)."""
        trans, start, end = self._scores()
        maskf = mask.to(emissions.dtype)
        lengths = mask.sum(dim=1)  # (B,)
        # Score of the gold path, fully vectorised.
        gold = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        # index_select, not trans[tags, ...]: its backward adds in order at any thread count
        # (layers/lookup.py says why indexing's does not), so a seed repeats a run bit for bit.
        gold = (gold * maskf).sum(dim=1) + start.index_select(0, tags[:, 0])
        pairs = tags[:, :-1] * trans.shape[1] + tags[:, 1:]  # (B, T - 1): flat (from, to) ids
        moves = trans.reshape(-1).index_select(0, pairs.reshape(-1)).view_as(pairs)
        gold = gold + (moves * maskf[:, 1:]).sum(dim=1)
        last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (B,)
        gold = gold + end.index_select(0, last)
        # Log partition function by the forward algorithm.
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t : t + 1], step, alpha)
        log_z = torch.logsumexp(alpha + end, dim=1)  # (B,)
        return ((log_z - gold) * (lengths > 0)).sum()

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Viterbi path (B, T) of label indices; 0 on padding."""
        trans, start, end = self._scores()
        batch, steps, k = emissions.shape
        score = start + emissions[:, 0]  # (B, K)
        identity = torch.arange(k).expand(batch, k)
        backpointers = []
        for t in range(1, steps):
            best, index = (score.unsqueeze(2) + trans).max(dim=1)  # (B, K) each
            keep = mask[:, t : t + 1]
            score = torch.where(keep, best + emissions[:, t], score)
            # On padding the path stays where it is, so backtracking passes through unchanged.
            backpointers.append(torch.where(keep, index, identity))
        tag = (score + end).argmax(dim=1)  # (B,)
        path = [tag]
        for index in reversed(backpointers):
            tag = index.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        path.reverse()
        return torch.stack(path, dim=1) * mask  # (B, T)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(label at t | sentence) by forward-backward: (B, T, K), rows sum to 1 on tokens.

        In probability space, rescaled at every step (Rabiner's scaled forward-backward): a
        matrix product and a division a step instead of a log-sum-exp, 4-6x faster at tagging
        shapes and closer to a float64 reference than the float32 log-space recursion (3e-7
        against 1e-5-1e-4, tests/test_crf.py). The per-step scales cancel in the final
        normalisation. Scores more than 80 below a step's best emission count as exp(-80).
        """
        trans, start, end = self._scores()
        steps = emissions.shape[1]
        weights = torch.exp(trans - trans.max())  # (K from, K to); forbidden moves are 0
        ends = torch.exp(end - end.max()).expand(emissions.shape[0], -1)  # (B, K)
        odds = torch.exp((emissions - emissions.amax(dim=2, keepdim=True)).clamp_min(-80.0))
        odds_at, keep = odds.unbind(1), mask.unsqueeze(2).unbind(1)  # each (B, K), (B, 1)
        alphas = [_normalised(torch.exp(start - start.max()) * odds_at[0])]
        for t in range(1, steps):
            step = _normalised((alphas[-1] @ weights) * odds_at[t])
            alphas.append(torch.where(keep[t], step, alphas[-1]))
        lengths = mask.sum(dim=1)
        # beta_t(i): the weight of finishing from label i at t; at each sentence's last token, end.
        betas = [ends] * steps
        for t in range(steps - 2, -1, -1):
            step = _normalised((odds_at[t + 1] * betas[t + 1]) @ weights.T)
            betas[t] = torch.where((t + 1 < lengths).unsqueeze(1), step, ends)
        both = torch.stack(alphas, dim=1) * torch.stack(betas, dim=1)  # (B, T, K)
        return _normalised(both) * mask.unsqueeze(2)


def _normalised(weights: torch.Tensor) -> torch.Tensor:
    """Rows (the last dimension) scaled to sum to 1; all-zero rows stay zero."""
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


def _mask2d(k: int, allowed: Sequence[tuple[int, int]] | None) -> torch.Tensor:
    if allowed is None:
        return torch.ones(k, k, dtype=torch.bool)
    mask = torch.zeros(k, k, dtype=torch.bool)
    for i, j in allowed:
        mask[i, j] = True
    return mask


def _mask1d(k: int, allowed: Sequence[int] | None) -> torch.Tensor:
    if allowed is None:
        return torch.ones(k, dtype=torch.bool)
    mask = torch.zeros(k, dtype=torch.bool)
    mask[list(allowed)] = True
    return mask
