"""tagsure: named-entity taggers that load exactly as they were trained.

Example:
    >>> import tagsure                                                      # doctest: +SKIP
    >>> config = tagsure.TrainConfig.from_dict(
    ...     {"data": {"train": "train.txt", "dev": "dev.txt"}})             # doctest: +SKIP
    >>> result = tagsure.train(config, out="model.tagsure")                 # doctest: +SKIP
    >>> tagger = tagsure.Tagger.load("model.tagsure")                       # doctest: +SKIP
    >>> tagger.predict(["Angela Merkel visited Paris ."])[0].entities       # doctest: +SKIP
    >>> tagger.evaluate(tagsure.load_corpus("test.txt")).micro.f1           # doctest: +SKIP
"""

from tagsure.data.conll import ColumnFormat, Corpus, CorpusError, load_corpus, read_conll
from tagsure.data.schemes import TagScheme
from tagsure.evaluation.metrics import Metrics
from tagsure.tagger import Entity, Prediction, Tagger
from tagsure.training.config import TrainConfig
from tagsure.training.trainer import TrainResult, resume, train
from tagsure.version import __version__

__all__ = [
    "ColumnFormat",
    "Corpus",
    "CorpusError",
    "Entity",
    "Metrics",
    "Prediction",
    "TagScheme",
    "Tagger",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "load_corpus",
    "read_conll",
    "resume",
    "train",
]
