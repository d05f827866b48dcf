"""Tagger architectures by versioned name: what a model file's ``architecture`` resolves to.

A body registers itself where it is defined, as spaCy and thinc components do::

    @register("tagsure.BiLSTMCRF.v1", kind="bilstm")
    class BiLSTMTagger(WordFeatureFrame): ...

A training config chooses one by its short ``kind``; the model file records the versioned
``name``, so an old file keeps loading after a new version of an architecture is added.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from tagsure.errors import ConfigError
from tagsure.models.frame import Constraints, TaggerFrame

DEFAULT_KIND = "bilstm"
BUILT_IN = (
    "tagsure.models.bilstm_crf",
    "tagsure.models.transformer_tagger",
    "tagsure.models.pretrained_tagger",
)
Frame = TypeVar("Frame", bound=type[TaggerFrame])


@dataclass(frozen=True)
class Architecture:
    name: str  # versioned, stored in model files: "tagsure.BiLSTMCRF.v1"
    kind: str  # what a training config says: "bilstm"
    network: type[TaggerFrame]

    def config_from_dict(self, values: dict[str, Any]) -> Any:
        return self.network.config_class.from_dict(values)

    def build(self, config: Any, constraints: Constraints) -> TaggerFrame:
        return self.network(config, constraints)

    def vectorizer_to_document(self, vectorizer: Any) -> dict[str, Any]:
        return self.network.vectorizer_to_document(vectorizer)

    def vectorizer_from_document(
        self, document: dict[str, Any], config: Any, labels: list[str]
    ) -> Any:
        return self.network.vectorizer_from_document(document, config, labels)

    def settings(self) -> list[str]:
        """The [model] settings a user may give."""
        return self.network.config_class.user_settings()


_BY_KIND: dict[str, Architecture] = {}
_loaded = False


def register(name: str, kind: str) -> Callable[[Frame], Frame]:
    """Class decorator: register a body under a versioned ``name`` and a config ``kind``."""

    def add(network: Frame) -> Frame:
        known = _BY_KIND.get(kind)
        if known is not None and (known.name, known.network.__qualname__) != (
            name,
            network.__qualname__,
        ):
            raise ValueError(f"architecture kind {kind!r} is already {known.name}")
        network.architecture = name
        _BY_KIND[kind] = Architecture(name, kind, network)
        return network

    return add


def _registered() -> dict[str, Architecture]:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILT_IN:
            importlib.import_module(module)
    return _BY_KIND


def kinds() -> list[str]:
    return list(_registered())


def by_kind(kind: str) -> Architecture:
    try:
        return _registered()[kind]
    except KeyError:
        raise ConfigError(f"unknown architecture {kind!r}; choose one of {kinds()}") from None


def by_name(name: str) -> Architecture | None:
    """The architecture a model file names, or None if this tagsure doesn't know it."""
    return next((a for a in _registered().values() if a.name == name), None)


def architecture_of(model: torch.nn.Module) -> Architecture:
    architecture = by_name(str(getattr(model, "architecture", None)))
    if architecture is None:
        raise ValueError(f"{type(model).__name__} is not a registered tagsure architecture")
    return architecture
