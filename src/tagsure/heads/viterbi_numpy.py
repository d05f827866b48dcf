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
