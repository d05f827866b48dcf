"""tagsure: named-entity taggers that load exactly as they were trained.

Example:
    >>> import tagsure                                                      # doctest: +SKIP
    >>> config = tagsure.TrainConfig.from_dict(
    ...     {"data": {"train": "train.txt", "dev": "dev.txt"}})             # doctest: +SKIP
    >>> result = tagsure.train(config, out="model.tagsure")                 # doctest: +SKIP
    >>> tagger = tagsure.Tagger.load("model.tagsure")                       # doctest: +SKIP
    >>> tagger.predict("Angela Merkel visited Paris.").entities             # doctest: +SKIP
    >>> tagger.evaluate(tagsure.load_corpus("test.txt")).micro.f1           # doctest: +SKIP
"""

from tagsure.data.conll import ColumnFormat, Corpus, CorpusError, load_corpus, read_conll
from tagsure.data.schemes import TagScheme
from tagsure.errors import ConfigError, InputError, ModelFileError, TagError, TagsureError
from tagsure.evaluation.metrics import Metrics
from tagsure.serving.onnx_runtime import OnnxTagger
from tagsure.storage.foreign import CheckpointError, CheckpointMismatchError, load_into
from tagsure.storage.onnx_export import export_onnx
from tagsure.tagger import Entity, Prediction, Tagger
from tagsure.training.config import LMTrainConfig, TrainConfig
from tagsure.training.lm_trainer import resume_lm, train_lm
from tagsure.training.trainer import TrainResult, resume, train
from tagsure.version import __version__

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
