"""Old home of :mod:`tagsure.storage.foreign`; its names, kept while callers move over."""

from tagsure.storage.foreign import *  # noqa: F403
from tagsure.storage.foreign import __all__  # noqa: F401
