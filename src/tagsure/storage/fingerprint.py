"""A model's fingerprint: what it predicted on a fixed probe when it was saved.

The file stores a probe (a few hundred tokens drawn from the dev data), the tags the model gave
it, the emission scores and their SHA-256. Loading re-runs the probe and compares: a model
whose state was not fully saved, or was rebuilt differently (a vocabulary re-sorted, a
constraint mask recomputed, a weight edited), gives other scores and is refused. The probe
takes a few milliseconds for the BiLSTM tagger.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from tagsure.tagger import Tagger

PROBE_TOKENS = 300
TENSOR_NAME = "fingerprint.emissions"


@dataclass
class Fingerprint:
    sentences: list[list[str]]
    tags: list[list[str]]
    emissions_sha256: str
    emissions: torch.Tensor  # (probe tokens, labels), all probe sentences concatenated

    def to_json(self) -> dict[str, Any]:
        return {
            "sentences": self.sentences,
            "tags": self.tags,
            "emissions_sha256": self.emissions_sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], emissions: torch.Tensor) -> Fingerprint:
        return cls(data["sentences"], data["tags"], data["emissions_sha256"], emissions)


@dataclass
class Verification:
    """The outcome of re-running the probe; ``ok`` when nothing differs."""

    problems: list[str] = field(default_factory=list)
    max_abs_difference: float = 0.0
    identical_emissions: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


def choose_probe(sentences: Sequence[Sequence[str]], tokens: int = PROBE_TOKENS) -> list[list[str]]:
    """Sentences spread evenly over ``sentences`` until about ``tokens`` tokens are taken."""
    if not sentences:
        return []
    # Sentences needed ~ tokens / mean length, so every (total / tokens)-th sentence.
    step = max(1, sum(len(s) for s in sentences) // tokens)
    probe: list[list[str]] = []
    taken = 0
    for sentence in sentences[::step]:
        if taken >= tokens:
            break
        probe.append(list(sentence))
        taken += len(sentence)
    return probe


def take(tagger: Tagger, sentences: list[list[str]]) -> Fingerprint:
    emissions = probe_emissions(tagger, sentences)
    tags, _ = tagger.tag(sentences)
    return Fingerprint(sentences, tags, digest(emissions), emissions)


def verify(tagger: Tagger, fingerprint: Fingerprint, tolerance: float = 0.0) -> Verification:
    """Re-run the probe. Tags must be identical; emissions bit-identical, or within
    ``tolerance`` (max absolute difference) when comparing across devices or dtypes."""
    result = Verification()
    emissions = probe_emissions(tagger, fingerprint.sentences)
    result.identical_emissions = digest(emissions) == fingerprint.emissions_sha256
    if emissions.shape != fingerprint.emissions.shape:
        result.problems.append(
            f"emission scores have shape {tuple(emissions.shape)}, the "
            f"fingerprint {tuple(fingerprint.emissions.shape)}"
        )
        return result
    result.max_abs_difference = float((emissions - fingerprint.emissions).abs().max())
    if not result.identical_emissions and result.max_abs_difference > tolerance:
        result.problems.append(
            f"emission scores differ from those at save time (max abs difference "
            f"{result.max_abs_difference:.3g}, tolerance {tolerance:g})"
        )
    tags, _ = tagger.tag(fingerprint.sentences)
    wrong = [
        (i, j)
        for i, (a, b) in enumerate(zip(tags, fingerprint.tags, strict=True))
        for j, (x, y) in enumerate(zip(a, b, strict=True))
        if x != y
    ]
    if wrong:
        i, j = wrong[0]
        result.problems.append(
            f"{len(wrong)} of {sum(map(len, tags))} probe tags differ; first: sentence {i} "
            f"token {j} {fingerprint.sentences[i][j]!r} was {fingerprint.tags[i][j]}, now "
            f"{tags[i][j]}"
        )
    return result


def probe_emissions(tagger: Tagger, sentences: list[list[str]]) -> torch.Tensor:
    return torch.cat(tagger.emissions(sentences)).contiguous()


def digest(emissions: torch.Tensor) -> str:
    return hashlib.sha256(emissions.float().numpy().tobytes()).hexdigest()
