"""The NumPy marginals that give ONNX predictions their scores equal the torch heads'."""

from __future__ import annotations

import numpy as np
import torch

from tagsure.heads.crf import CRF
from tagsure.heads.softmax import Softmax
from tagsure.heads.viterbi_numpy import crf_marginals, softmax_marginals


def test_numpy_crf_marginals_equal_the_torch_crf() -> None:
    torch.manual_seed(0)
    k = 5
    allowed = [(i, j) for i in range(k) for j in range(k) if (i + j) % 3]
    crf = CRF(k, allowed, [0, 1, 2], [0, 3, 4])
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    lengths = torch.tensor([7, 1, 4, 7, 2])
    emissions = torch.randn(5, 7, k) * 3
    mask = torch.arange(7)[None, :] < lengths[:, None]
    with torch.no_grad():
        expected = crf.marginals(emissions, mask).numpy()
    trans, start, end = (x.detach().numpy() for x in crf._scores())
    got = crf_marginals(emissions.numpy(), mask.numpy(), trans, start, end)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    sums = got.sum(axis=2)
    np.testing.assert_allclose(sums[mask.numpy()], 1.0, atol=1e-5)
    assert (sums[~mask.numpy()] == 0).all()


def test_numpy_softmax_marginals_equal_the_torch_head() -> None:
    torch.manual_seed(1)
    emissions = torch.randn(3, 4, 6) * 4
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    expected = Softmax(6).marginals(emissions, mask).numpy()
    np.testing.assert_allclose(
        softmax_marginals(emissions.numpy(), mask.numpy()), expected, atol=1e-6
    )
