"""The batched CRF against brute force: every path enumerated on small inputs."""

from __future__ import annotations

import itertools

import pytest
import torch

from tagsure.data.schemes import TagScheme, allowed_ends, allowed_starts, allowed_transitions
from tagsure.heads.crf import CRF

LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


def random_crf(seed: int, constrained: bool) -> CRF:
    torch.manual_seed(seed)
    scheme = TagScheme.BIOES
    crf = (
        CRF(
            len(LABELS),
            allowed_transitions(LABELS, scheme),
            allowed_starts(LABELS, scheme),
            allowed_ends(LABELS, scheme),
        )
        if constrained
        else CRF(len(LABELS))
    )
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def path_score(crf: CRF, emissions: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    trans, start, end = crf._scores()
    score = start[path[0]] + end[path[-1]] + sum(emissions[t, k] for t, k in enumerate(path))
    return score + sum(trans[a, b] for a, b in itertools.pairwise(path))


def batch(seed: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    steps = max(lengths)
    emissions = torch.randn(len(lengths), steps, len(LABELS), dtype=torch.float64)
    mask = torch.arange(steps).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    tags = torch.randint(0, len(LABELS), (len(lengths), steps)) * mask
    return emissions, mask, tags


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_loss_viterbi_and_marginals_equal_brute_force(seed: int, constrained: bool) -> None:
    crf = random_crf(seed, constrained).double()
    lengths = [1, 3, 4, 2]
    emissions, mask, tags = batch(seed, lengths)
    losses = [
        crf.loss(emissions[b : b + 1], tags[b : b + 1], mask[b : b + 1])
        for b in range(len(lengths))
    ]
    assert torch.allclose(crf.loss(emissions, tags, mask), sum(losses))
    decoded = crf.decode(emissions, mask)
    marginals = crf.marginals(emissions, mask)
    for b, n in enumerate(lengths):
        paths = list(itertools.product(range(len(LABELS)), repeat=n))
        scores = torch.stack([path_score(crf, emissions[b], p) for p in paths])
        log_z = torch.logsumexp(scores, dim=0)
        gold = path_score(crf, emissions[b], tuple(tags[b, :n].tolist()))
        assert torch.allclose(losses[b], log_z - gold)
        assert tuple(decoded[b, :n].tolist()) == paths[int(scores.argmax())]
        assert decoded[b, n:].eq(0).all()
        probs = torch.softmax(scores, dim=0)
        expected = torch.zeros(n, len(LABELS), dtype=torch.float64)
        for p, path in zip(probs, paths, strict=True):
            for t, k in enumerate(path):
                expected[t, k] += p
        assert torch.allclose(marginals[b, :n], expected)
        assert marginals[b, n:].eq(0).all()


def test_constrained_decoding_never_produces_an_ill_formed_sequence() -> None:
    from tagsure.data.schemes import validate

    crf = random_crf(0, constrained=True)
    emissions, mask, _ = batch(1, [7] * 64)
    emissions = emissions.float() * 5  # strong emissions push towards forbidden transitions
    for path in crf.decode(emissions, mask).tolist():
        assert validate([LABELS[k] for k in path], TagScheme.BIOES) == []


def test_batched_decoding_equals_one_sentence_at_a_time() -> None:
    crf = random_crf(2, constrained=True)
    lengths = [5, 1, 9, 3]
    emissions, mask, _ = batch(3, lengths)
    emissions = emissions.float()
    together = crf.decode(emissions, mask)
    for b, n in enumerate(lengths):
        alone = crf.decode(emissions[b : b + 1, :n], mask[b : b + 1, :n])
        assert torch.equal(together[b, :n], alone[0])


def log_space_marginals(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The textbook log-space forward-backward, as a float64 reference."""
    trans, start, end = crf._scores()
    steps, lengths = emissions.shape[1], mask.sum(dim=1)
    alphas = [start + emissions[:, 0]]
    for t in range(1, steps):
        step = torch.logsumexp(alphas[-1].unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alphas.append(torch.where(mask[:, t : t + 1], step, alphas[-1]))
    betas = [end.expand_as(alphas[0])] * steps
    for t in range(steps - 2, -1, -1):
        step = torch.logsumexp(trans + (emissions[:, t + 1] + betas[t + 1]).unsqueeze(1), dim=2)
        betas[t] = torch.where((t + 1 < lengths).unsqueeze(1), step, end.expand_as(step))
    both = torch.stack(alphas, dim=1) + torch.stack(betas, dim=1)
    return torch.softmax(both, dim=2) * mask.unsqueeze(2)


@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_float32_marginals_of_long_sentences_match_a_float64_reference(scale: float) -> None:
    crf = random_crf(3, constrained=True)
    torch.manual_seed(5)
    lengths = torch.tensor([120, 117, 60, 33, 2, 1])
    emissions = scale * torch.randn(len(lengths), 120, len(LABELS))
    mask = torch.arange(120).unsqueeze(0) < lengths.unsqueeze(1)
    got = crf.marginals(emissions, mask)
    expected = log_space_marginals(crf.double(), emissions.double(), mask)
    assert got.dtype == torch.float32
    assert (got.double() - expected).abs().max() < 2e-6  # the float32 log-space one: ~1e-4


def test_marginals_stay_finite_when_emissions_differ_by_hundreds() -> None:
    crf = random_crf(1, constrained=True)
    emissions = torch.zeros(2, 6, len(LABELS))
    emissions[:, :, 2] = 400.0  # I-PER everywhere, which cannot start a sentence
    emissions[1, 3] = -300.0
    mask = torch.ones(2, 6, dtype=torch.bool)
    marginals = crf.marginals(emissions, mask)
    assert torch.isfinite(marginals).all()
    assert torch.allclose(marginals.sum(dim=2), torch.ones(2, 6))
