"""The model card: a short description a model file carries (what it was trained on, how well
it does, its license and intended use), after Mitchell et al. (2019) and Hugging Face's cards.

The user writes the prose fields (``[card]`` in the training TOML, ``tagsure train --card
KEY=VALUE``, or ``tagger.metadata["card"]``); the training run fills the rest where it knows
them: the training data (its file names) and the dev metrics of the saved weights. The card is
stored as JSON in the model document under ``"card"``; ``tagsure inspect`` shows it and the
Hugging Face export writes it as ``README.md``. Files saved before cards existed have none and
load as before.

Example:
    >>> card = build_card({"card": {"license": "cc-by-4.0"},
    ...                    "training": {"data": {"train": "/data/train.txt"}}})
    >>> card["license"], card["training_data"]
    ('cc-by-4.0', 'train.txt')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import PurePath
from typing import Any

from tagsure.config_dict import JsonConfig
from tagsure.errors import ConfigError, ModelFileError


@dataclass
class ModelCard(JsonConfig):
    """The fields a user writes; empty ones are left out of the card (or filled by training)."""

    settings_name = "[card]"

    name: str = ""  # a title; default "tagsure named-entity tagger"
    description: str = ""
    language: str = ""  # e.g. "en" (an ISO 639 code, as Hugging Face's metadata wants)
    license: str = ""  # e.g. "cc-by-4.0", "mit"; say the training data's terms
    training_data: str = ""  # default: the training and dev file names
    intended_use: str = ""
    limitations: str = ""
    authors: str = ""

    def __post_init__(self) -> None:
        for item in fields(self):
            if not isinstance(getattr(self, item.name), str):
                raise ConfigError(f"[card] {item.name} must be a string")


USER_FIELDS = tuple(item.name for item in fields(ModelCard))
DEFAULT_NAME = "tagsure named-entity tagger"


def parse_card_options(options: list[str]) -> dict[str, str]:
    """``["license=mit", "intended_use=news"]`` (``--card KEY=VALUE``) as card fields."""
    card: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in USER_FIELDS:
            raise ConfigError(
                f"--card {option!r}: expected KEY=VALUE with KEY one of {', '.join(USER_FIELDS)}"
            )
        card[key] = value.strip()
    return card


def build_card(metadata: dict[str, Any]) -> dict[str, Any]:
    """The card to store for a tagger's ``metadata``: its user fields, ``training_data``
    from the training record when the user gave none, ``metrics`` from the saved weights'."""
    given = metadata.get("card") or {}
    card: dict[str, Any] = {k: str(given[k]) for k in USER_FIELDS if given.get(k)}
    data = (metadata.get("training") or {}).get("data") or {}
    if "training_data" not in card and data.get("train"):
        parts = [PurePath(str(data["train"])).name]
        if data.get("dev"):
            parts.append(f"dev: {PurePath(str(data['dev'])).name}")
        card["training_data"] = "; ".join(parts)
    metrics = metadata.get("metrics") or {}
    dev = metrics.get("dev")
    if isinstance(dev, dict) and isinstance(dev.get("micro"), dict):
        card["metrics"] = {
            "split": "dev",
            "epoch": metrics.get("epoch"),
            "micro": {k: dev["micro"].get(k) for k in ("precision", "recall", "f1")},
            "per_type": {
                name: {k: scores.get(k) for k in ("precision", "recall", "f1")}
                for name, scores in (dev.get("per_type") or {}).items()
            },
        }
    return card


def check_card(card: Any, source: str) -> dict[str, Any]:
    """A stored card as read from a file, or a :class:`ModelFileError` naming the bad field."""
    if not isinstance(card, dict):
        raise ModelFileError(f"{source}: the model card is a {type(card).__name__}, not an object")
    for key, value in card.items():
        if key in USER_FIELDS:
            if not isinstance(value, str):
                raise ModelFileError(f"{source}: model card field {key!r} is not a string")
        elif key == "metrics":
            if not isinstance(value, dict):
                raise ModelFileError(f"{source}: model card metrics are not an object")
        else:
            raise ModelFileError(
                f"{source}: unknown model card field {key!r}; this tagsure knows "
                f"{', '.join(USER_FIELDS)}, metrics"
            )
    return card


def card_lines(card: dict[str, Any]) -> list[str]:
    """The card as ``field: value`` lines, for ``tagsure inspect``."""
    lines = [f"{key.replace('_', ' ')}: {card[key]}" for key in USER_FIELDS if card.get(key)]
    metrics = card.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("micro"), dict):
        lines.append(f"metrics: {_metrics_line(metrics)}")
    return lines


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}" if isinstance(value, int | float) else "?"


def _metrics_line(metrics: dict[str, Any]) -> str:
    micro = metrics["micro"]
    epoch = f", epoch {metrics['epoch']}" if metrics.get("epoch") is not None else ""
    per_type = ", ".join(
        f"{name} {_percent(scores.get('f1'))}"
        for name, scores in sorted((metrics.get("per_type") or {}).items())
        if isinstance(scores, dict)
    )
    return (
        f"{metrics.get('split', 'dev')} F1 {_percent(micro.get('f1'))} (precision "
        f"{_percent(micro.get('precision'))}, recall {_percent(micro.get('recall'))}{epoch})"
        + (f"; per type: {per_type}" if per_type else "")
    )


def card_markdown(card: dict[str, Any], labels: list[str], about: dict[str, str]) -> str:
    """The card as a Hugging Face ``README.md``: YAML metadata, then a section per field.

    ``about`` holds lines for the "Model" section (architecture, tag scheme, versions).
    """
    front = {"library_name": "tagsure", "pipeline_tag": "token-classification"}
    front |= {k: card[k] for k in ("license", "language") if card.get(k)}
    types = sorted({label.split("-", 1)[1] for label in labels if "-" in label})
    yaml = [f"{key}: {json.dumps(value)}" for key, value in front.items()]
    yaml.append("tags:\n- token-classification\n- ner\n- tagsure")
    out = ["---", *yaml, "---", "", f"# {card.get('name') or DEFAULT_NAME}", ""]
    if card.get("description"):
        out += [card["description"], ""]
    out += ["## Entity types", "", ", ".join(types) or "(none)", ""]
    sections = [
        ("Intended use", "intended_use"),
        ("Training data", "training_data"),
        ("Limitations", "limitations"),
        ("Authors", "authors"),
        ("License", "license"),
    ]
    metrics = card.get("metrics")
    for title, key in sections:
        if card.get(key):
            out += [f"## {title}", "", card[key], ""]
        if key == "training_data" and isinstance(metrics, dict) and metrics.get("micro"):
            out += ["## Metrics", "", _metrics_table(metrics), ""]
    out += ["## Model", ""]
    out += [f"- {key}: {value}" for key, value in about.items()]
    return "\n".join(out) + "\n"


def _metrics_table(metrics: dict[str, Any]) -> str:
    epoch = f" (epoch {metrics['epoch']})" if metrics.get("epoch") is not None else ""
    rows = [
        f"Entity-level scores on the {metrics.get('split', 'dev')} set{epoch}, as conlleval "
        "counts them.",
        "",
        "| type | precision | recall | F1 |",
        "|---|---:|---:|---:|",
    ]
    per_type = metrics.get("per_type") or {}
    for name, scores in [*sorted(per_type.items()), ("all (micro)", metrics["micro"])]:
        cells = [_percent(scores.get(k)) for k in ("precision", "recall", "f1")]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
