"""Matching checkpoint keys to model keys: wrapper prefixes, renames, patterns, shapes.

Training wrappers (DataParallel, ``torch.compile``, Lightning) prefix every key, so
:func:`best_mapping` tries each strip and add of their prefixes and keeps the best match.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from tagsure.storage.foreign.errors import CheckpointError

#: Key segments added by training wrappers, with the wrapper that adds them.
WRAPPER_PREFIXES: dict[str, str] = {
    "module.": "nn.DataParallel / DistributedDataParallel / DeepSpeed",
    "_orig_mod.": "torch.compile",
    "model.": "PyTorch Lightning (LightningModule attribute `model`)",
}

Rules = Sequence[tuple[re.Pattern[str], str]]


def wrapper_names(prefix: str) -> str:
    """The wrappers that add ``prefix`` (e.g. ``'_orig_mod.module.'``), joined with ``+``."""
    names = []
    for segment in prefix.rstrip(".").split("."):
        names.append(WRAPPER_PREFIXES.get(segment + ".", "custom prefix").split(" (")[0])
    return " + ".join(names)


def common_wrapper_prefixes(names: Sequence[str]) -> list[str]:
    """Wrapper segments (``module.`` etc.) that lead *every* key, outermost first."""
    prefixes: list[str] = []
    current = list(names)
    while current:
        first = current[0].split(".", 1)[0] + "."
        if first not in WRAPPER_PREFIXES:
            break
        if not all(n.startswith(first) and len(n) > len(first) for n in current):
            break
        prefixes.append(first)
        current = [n[len(first) :] for n in current]
    return prefixes


def _wrapper_chains(keys: Iterable[str]) -> set[str]:
    """Leading chains of wrapper segments (``module.``, ``_orig_mod.module.``...) in keys."""
    chains = {""}
    segments = {p.rstrip(".") for p in WRAPPER_PREFIXES}
    for key in keys:
        chain = ""
        for part in key.split(".")[:-1][:3]:
            if part not in segments:
                break
            chain += part + "."
            chains.add(chain)
    return chains


def compile_renames(rename: Sequence[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    """``(regex, replacement)`` pairs compiled; a bad regex is a :class:`CheckpointError`."""
    rules = []
    for pattern, replacement in rename:
        try:
            rules.append((re.compile(pattern), replacement))
        except re.error as exc:
            raise CheckpointError(f"rename rule {pattern!r} is not a valid regex: {exc}") from exc
    return rules


def _apply_renames(key: str, rules: Rules) -> str:
    for pattern, replacement in rules:
        key = pattern.sub(replacement, key)
    return key


@dataclass
class KeyMapping:
    """How checkpoint keys become model keys: a prefix stripped and added, then renames."""

    strip: str
    add: str
    targets: dict[str, str]  # checkpoint key -> model key
    renamed: dict[str, str]
    score: int  # how many targets are model keys


def best_mapping(ckpt_keys: Sequence[str], model_keys: set[str], rules: Rules) -> KeyMapping:
    """Try every strip/add of wrapper prefixes; keep the one matching the most model keys.

    Ties go to the smallest change, so a module whose own keys start with ``model.`` keeps
    them; renames apply inside the search, so rules for unwrapped names work on wrapped keys.
    """
    best: KeyMapping | None = None
    strips = sorted(_wrapper_chains(ckpt_keys), key=len)
    adds = sorted(_wrapper_chains(model_keys), key=len)
    for strip in strips:
        for add in adds:
            if strip and add and (strip.endswith(add) or add.endswith(strip)):
                continue  # equivalent to a shorter change
            targets: dict[str, str] = {}
            renamed: dict[str, str] = {}
            for key in ckpt_keys:
                base = key[len(strip) :] if strip and key.startswith(strip) else key
                base = add + base
                final = _apply_renames(base, rules)
                if final != base:
                    renamed[key] = final
                targets[key] = final
            if len(set(targets.values())) != len(targets):
                continue  # two checkpoint keys would land on one model key
            score = sum(1 for t in targets.values() if t in model_keys)
            cost = len(strip) + len(add)
            if (
                best is None
                or score > best.score
                or (score == best.score and cost < len(best.strip) + len(best.add))
            ):
                best = KeyMapping(strip, add, targets, renamed, score)
    if best is None:
        # Only reachable when the rename rules themselves merge keys.
        collisions: dict[str, list[str]] = {}
        for key in ckpt_keys:
            collisions.setdefault(_apply_renames(key, rules), []).append(key)
        clash = next(v for v in collisions.values() if len(v) > 1)
        raise CheckpointError(
            f"rename rules map several checkpoint keys onto one name ({', '.join(clash[:4])}); "
            "make the rules more specific."
        )
    return best


def matches(key: str, patterns: Sequence[str]) -> bool:
    """Whether ``key`` matches any of the fnmatch ``patterns``."""
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def dtype_name(dtype: torch.dtype) -> str:
    """``float32``, not ``torch.float32``."""
    return str(dtype).removeprefix("torch.")
