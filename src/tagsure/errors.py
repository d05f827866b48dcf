"""The errors tagsure raises for problems the user can fix; anything else is a bug.

The CLI shows a :class:`TagsureError` as one line (``tagsure: error: MESSAGE``) and lets every
other exception print its traceback. The classes that describe a value also subclass
:class:`ValueError`, so code written against the older ``except ValueError`` keeps working.

Example:
    >>> from tagsure.data.conll import CorpusError
    >>> issubclass(CorpusError, TagsureError), issubclass(ConfigError, ValueError)
    (True, True)
"""

from __future__ import annotations


class TagsureError(Exception):
    """Base of tagsure's own errors: the message names the input and what to do about it."""


class ConfigError(TagsureError, ValueError):
    """A setting (config file, option, model config) that tagsure cannot use."""


class TagError(TagsureError, ValueError):
    """A tag that is not ``O`` or ``PREFIX-TYPE``, or a tag sequence outside its scheme."""


class InputError(TagsureError, ValueError):
    """Input that cannot be read or tagged: a text or vectors file, a tag outside the labels."""


class ModelFileError(TagsureError, ValueError):
    """A file that is not a readable tagsure model; the message names the file and the fix."""


class DistributedError(TagsureError):
    """A data-parallel run that cannot go on: a process stopped, or the launch is incomplete."""
