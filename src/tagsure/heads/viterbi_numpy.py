"""CRF Viterbi decoding in NumPy, step for step the same as ``heads/crf.CRF.decode``.

This is what decodes the emission scores an ONNX model computes (``tagsure predict --onnx``):
the emission network is in the ONNX graph, the Viterbi recursion around it is here, with the
same float32 arithmetic and the same tie-breaking (the first maximum wins, in ``torch.max``
and in ``np.argmax``), so equal emissions give identical paths.
"""

from __future__ import annotations

import numpy as np


def viterbi(
    emissions: np.ndarray,
    mask: np.ndarray,
    transitions: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """Best label path (B, T), 0 on padding. emissions (B, T, K) float32, mask (B, T) bool;
    transitions (K, K) from -> to, start/end (K,), with forbidden moves already masked."""
    emissions = emissions.astype(np.float32, copy=False)
    batch, steps, k = emissions.shape
    score = start + emissions[:, 0]  # (B, K)
    identity = np.broadcast_to(np.arange(k), (batch, k))
    backpointers = []
    for t in range(1, steps):
        candidates = score[:, :, None] + transitions  # (B, K from, K to)
        index = candidates.argmax(axis=1)  # (B, K)
        best = np.take_along_axis(candidates, index[:, None, :], axis=1)[:, 0]  # (B, K)
        keep = mask[:, t : t + 1]
        score = np.where(keep, best + emissions[:, t], score)
        # On padding the path stays where it is, so backtracking passes through unchanged.
        backpointers.append(np.where(keep, index, identity))
    tag = (score + end).argmax(axis=1)  # (B,)
    path = [tag]
    for index in reversed(backpointers):
        tag = np.take_along_axis(index, tag[:, None], axis=1)[:, 0]
        path.append(tag)
    path.reverse()
    return np.stack(path, axis=1) * mask  # (B, T)


def crf_marginals(
    emissions: np.ndarray,
    mask: np.ndarray,
    transitions: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """P(label at t | sentence) by the scaled forward-backward of ``heads/crf.CRF.marginals``:
    (B, T, K), rows summing to 1 on tokens and 0 on padding. Arguments as for :func:`viterbi`."""
    emissions = emissions.astype(np.float32, copy=False)
    steps = emissions.shape[1]
    weights = np.exp(transitions - transitions.max())  # (K from, K to)
    ends = np.broadcast_to(np.exp(end - end.max()), emissions[:, 0].shape)
    odds = np.exp(np.maximum(emissions - emissions.max(axis=2, keepdims=True), -80.0))
    alphas = [_normalised(np.exp(start - start.max()) * odds[:, 0])]  # each (B, K)
    for t in range(1, steps):
        step = _normalised((alphas[-1] @ weights) * odds[:, t])
        alphas.append(np.where(mask[:, t : t + 1], step, alphas[-1]))
    lengths = mask.sum(axis=1)
    betas = [ends] * steps  # beta_t(i): the weight of finishing from label i at t
    for t in range(steps - 2, -1, -1):
        step = _normalised((odds[:, t + 1] * betas[t + 1]) @ weights.T)
        betas[t] = np.where((t + 1 < lengths)[:, None], step, ends)
    both = np.stack(alphas, axis=1) * np.stack(betas, axis=1)  # (B, T, K)
    return (_normalised(both) * mask[:, :, None]).astype(np.float32, copy=False)


def _normalised(weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=-1, keepdims=True)
    return weights / np.maximum(total, np.finfo(np.float32).tiny)


def softmax_marginals(emissions: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-token label probabilities of a softmax head: (B, T, K), 0 on padding."""
    emissions = emissions.astype(np.float32, copy=False)
    return np.exp(emissions - _logsumexp(emissions, axis=2, keepdims=True)) * mask[:, :, None]


def _logsumexp(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    out = np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top
    return out if keepdims else out.squeeze(axis)
