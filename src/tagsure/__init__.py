"""tagsure: named-entity taggers that load exactly as they were trained.

Example:
    >>> import tagsure                                                      # doctest: +SKIP
    >>> config = tagsure.TrainConfig.from_dict(
    ...     {"data": {"train": "train.txt", "dev": "dev.txt"}})             # doctest: +SKIP
    >>> result = tagsure.train(config, out="model.tagsure")                 # doctest: +SKIP
    >>> tagger = tagsure.Tagger.load("model.tagsure")                       # doctest: +SKIP
    >>> tagger.predict("Angela Merkel visited Paris.").entities             # doctest: +SKIP
    >>> tagger.evaluate(tagsure.load_corpus("test.txt")).micro.f1           # doctest: +SKIP

The names below load on first use (PEP 562), so ``import tagsure`` (and ``tagsure --help``)
does not import torch; ``from tagsure import Tagger`` imports what ``Tagger`` needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tagsure.version import __version__

if TYPE_CHECKING:
    from tagsure.data.conll import ColumnFormat, Corpus, CorpusError, load_corpus, read_conll
    from tagsure.data.schemes import TagScheme
    from tagsure.errors import ConfigError, InputError, ModelFileError, TagError, TagsureError
    from tagsure.evaluation.metrics import Metrics
    from tagsure.prediction import Entity, Prediction
    from tagsure.serving.onnx_runtime import OnnxTagger
    from tagsure.storage.foreign import CheckpointError, CheckpointMismatchError, load_into
    from tagsure.storage.onnx_export import export_onnx
    from tagsure.tagger import Tagger
    from tagsure.training.config import LMTrainConfig, TrainConfig
    from tagsure.training.lm_trainer import resume_lm, train_lm
    from tagsure.training.trainer import TrainResult, resume, train

# Each public name and the module that defines it.
_HOMES = {
    "ColumnFormat": "tagsure.data.conll",
    "Corpus": "tagsure.data.conll",
    "CorpusError": "tagsure.data.conll",
    "load_corpus": "tagsure.data.conll",
    "read_conll": "tagsure.data.conll",
    "TagScheme": "tagsure.data.schemes",
    "ConfigError": "tagsure.errors",
    "InputError": "tagsure.errors",
    "ModelFileError": "tagsure.errors",
    "TagError": "tagsure.errors",
    "TagsureError": "tagsure.errors",
    "Metrics": "tagsure.evaluation.metrics",
    "OnnxTagger": "tagsure.serving.onnx_runtime",
    "CheckpointError": "tagsure.storage.foreign",
    "CheckpointMismatchError": "tagsure.storage.foreign",
    "load_into": "tagsure.storage.foreign",
    "export_onnx": "tagsure.storage.onnx_export",
    "Entity": "tagsure.prediction",
    "Prediction": "tagsure.prediction",
    "Tagger": "tagsure.tagger",
    "LMTrainConfig": "tagsure.training.config",
    "TrainConfig": "tagsure.training.config",
    "resume_lm": "tagsure.training.lm_trainer",
    "train_lm": "tagsure.training.lm_trainer",
    "TrainResult": "tagsure.training.trainer",
    "resume": "tagsure.training.trainer",
    "train": "tagsure.training.trainer",
}

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "ColumnFormat",
    "ConfigError",
    "Corpus",
    "CorpusError",
    "Entity",
    "InputError",
    "LMTrainConfig",
    "Metrics",
    "ModelFileError",
    "OnnxTagger",
    "Prediction",
    "TagError",
    "TagScheme",
    "Tagger",
    "TagsureError",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "export_onnx",
    "load_corpus",
    "load_into",
    "read_conll",
    "resume",
    "resume_lm",
    "train",
    "train_lm",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used, and keep the name."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tagsure' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
