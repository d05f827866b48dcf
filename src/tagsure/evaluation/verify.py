"""What ``tagsure verify`` compares: a reloaded model's probe and dev metrics against save time.

Example:
    >>> from tagsure.evaluation.metrics import evaluate
    >>> now = evaluate([["B-PER", "O"]], [["B-PER", "O"]])
    >>> differences([], now.to_dict(), now, "dev.txt")
    []
    >>> differences([], None, now, "dev.txt")
    ['the file stores no dev metrics to compare with']
    >>> same_gold_entities(now.to_dict(), now)
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tagsure.evaluation.metrics import Metrics


def differences(
    probe_problems: Sequence[str],
    saved: Mapping[str, Any] | None,
    now: Metrics | None,
    data: str = "",
) -> list[str]:
    """Every way the model differs from save time, one sentence each; empty when it does not.

    ``probe_problems`` are the fingerprint probe's; ``saved`` is the model file's dev metrics
    (``Metrics.to_dict()`` as stored) and ``now`` the metrics re-computed on ``data``, or None
    when no data was given. The micro scores are compared one by one; the rest of the metrics
    only count when nothing else already explains the difference.
    """
    problems = list(probe_problems)
    if now is None:
        return problems
    if saved is None:
        return [*problems, "the file stores no dev metrics to compare with"]
    current = json.loads(json.dumps(now.to_dict()))  # as stored: JSON values
    for key in ("precision", "recall", "f1"):
        if saved["micro"][key] != current["micro"][key]:
            problems.append(
                f"{data}: micro {key} is {current['micro'][key]:.6f}, "
                f"{saved['micro'][key]:.6f} at save time"
            )
    if saved != current and not problems:
        problems.append(f"{data}: per-type metrics or accuracy differ from save time")
    return problems


def same_gold_entities(saved: Mapping[str, Any], now: Metrics) -> bool:
    """Whether ``now`` was counted on the same gold entities as ``saved`` (per type), i.e. on
    the dev file the model was selected on: the only data its stored metrics describe."""
    gold = {name: prf.gold for name, prf in now.per_type.items()}
    stored = {name: prf.get("gold") for name, prf in saved.get("per_type", {}).items()}
    return saved.get("micro", {}).get("gold") == now.micro.gold and stored == gold
