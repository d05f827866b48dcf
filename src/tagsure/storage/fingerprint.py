"""A model's fingerprint: its tags and emission scores on a fixed probe when it was saved.

Loading re-runs the probe, so a model not fully saved or rebuilt differently is refused. CPU
kernels round differently, so emissions are compared bit for bit only on the platform that
saved the file, and within :data:`CROSS_PLATFORM_TOLERANCE` elsewhere (tags always exactly).

The probe runs one sentence per forward pass, on one thread, with oneDNN off (``method``
"sentence"): a oneDNN LSTM call packs a copy of its weights, so the batched probe of older files
(``method`` "batched", still honoured) peaks at ~1.6x the file's size while loading; this way
~1.1x. PyTorch's own kernels round by thread count, hence the one thread. The sentences run
longest first (the result is put back in their order), so MKL's buffer pool holds one buffer.
"""

from __future__ import annotations

import hashlib
import platform as _platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


class Probed(Protocol):
    """What the fingerprint runs: a tagger's emissions and tags (storage knows no Tagger)."""

    def emissions(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]: ...

    def tag(
        self, sentences: Sequence[Sequence[str]], with_scores: bool = False
    ) -> tuple[list[list[str]], Any]: ...


PROBE_TOKENS = 300
TENSOR_NAME = "fingerprint.emissions"
# Max abs emission difference allowed when the file was saved on another platform: rounding
# differences of other kernels are ~1e-7; an edited or mis-rebuilt model differs by far more.
CROSS_PLATFORM_TOLERANCE = 1e-4
METHODS = ("sentence", "batched")  # how a probe is run (see the module doc)


def current_platform(device: torch.device | str = "cpu") -> dict[str, str]:
    """Where emissions are computed now: what decides whether they can be bit-identical (a
    GPU, by its name, is another platform than the CPU: its scores agree within tolerance)."""
    device = torch.device(device)
    where = {"device": "cpu"}
    if device.type == "cuda":
        where = {"device": "cuda", "gpu": torch.cuda.get_device_name(device)}
    elif device.type != "cpu":
        where = {"device": device.type}
    return {
        "torch": torch.__version__,
        **where,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": _platform.machine(),
    }


def platform_of(tagger: Probed) -> dict[str, str]:
    """Where ``tagger`` computes: its own ``platform`` (an ONNX Runtime tagger has one), else
    its torch device's."""
    own = getattr(tagger, "platform", None)
    if isinstance(own, dict):
        return own
    return current_platform(torch.device(getattr(tagger, "device", "cpu")))


@dataclass
class Fingerprint:
    sentences: list[list[str]]
    tags: list[list[str]]
    emissions_sha256: str
    emissions: torch.Tensor  # (probe tokens, labels), all probe sentences concatenated
    platform: dict[str, str] | None = None  # where it was taken; None in older files
    method: str = "sentence"  # how the probe was run; older files: "batched"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sentences": self.sentences,
            "tags": self.tags,
            "emissions_sha256": self.emissions_sha256,
            "method": self.method,
        }
        if self.platform is not None:
            data["platform"] = self.platform
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], emissions: torch.Tensor) -> Fingerprint:
        sentences, tags, sha = data["sentences"], data["tags"], data["emissions_sha256"]
        method = data.get("method", "batched")
        return cls(sentences, tags, sha, emissions, data.get("platform"), method)


@dataclass
class Verification:
    """The outcome of re-running the probe; ``ok`` when nothing differs."""

    problems: list[str] = field(default_factory=list)
    max_abs_difference: float = 0.0
    identical_emissions: bool = True
    tolerance: float = 0.0  # the tolerance the emissions were held to
    same_platform: bool = True  # saved where it is checked: then the check is bit for bit

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


def take(tagger: Probed, sentences: list[list[str]]) -> Fingerprint:
    """The fingerprint of ``tagger`` on ``sentences``, now."""
    emissions, tags = run_probe(tagger, sentences, "sentence")
    return Fingerprint(sentences, tags, digest(emissions), emissions, platform_of(tagger))


def verify(
    tagger: Probed, fingerprint: Fingerprint, tolerance: float | None = None
) -> Verification:
    """Re-run the probe: identical tags, emissions within ``tolerance`` (by default 0 on the
    saving platform, :data:`CROSS_PLATFORM_TOLERANCE` elsewhere)."""
    same_platform = fingerprint.platform == platform_of(tagger)
    if tolerance is None:
        tolerance = 0.0 if same_platform else CROSS_PLATFORM_TOLERANCE
    result = Verification(tolerance=tolerance, same_platform=same_platform)
    emissions, tags = run_probe(tagger, fingerprint.sentences, fingerprint.method)
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


def run_probe(
    tagger: Probed, sentences: list[list[str]], method: str
) -> tuple[torch.Tensor, list[list[str]]]:
    """Emissions (all sentences concatenated) and tags of ``tagger`` on the probe."""
    if method == "batched":
        return torch.cat(tagger.emissions(sentences)).contiguous(), tagger.tag(sentences)[0]
    # Longest first: MKL keeps the packing buffer of each matrix product in a pool and reuses
    # one only if it is big enough, so sentences of rising length each left a new ~1.5 MB
    # buffer behind (a 512-unit LSTM). Each sentence is its own forward pass, so the order
    # changes no bit of the result.
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    emissions: list[torch.Tensor] = [torch.empty(0)] * len(sentences)
    tags: list[list[str]] = [[] for _ in sentences]
    with _native_kernels():
        for i in order:
            emissions[i] = tagger.emissions([sentences[i]])[0]
        for i in order:
            tags[i] = tagger.tag([sentences[i]])[0][0]
    return torch.cat(emissions).contiguous(), tags


@contextmanager
def _native_kernels() -> Iterator[None]:
    """oneDNN off (its LSTM packs a weight copy per call), one thread (the result is then the
    same whatever thread count the process runs)."""
    mkldnn, threads = bool(torch.backends.mkldnn.enabled), torch.get_num_threads()
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # a property setter
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn  # type: ignore[assignment]


def digest(emissions: torch.Tensor) -> str:
    return hashlib.sha256(emissions.float().numpy().tobytes()).hexdigest()
