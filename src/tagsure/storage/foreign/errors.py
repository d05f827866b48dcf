"""The error of foreign-checkpoint reading (the mismatch error is in ``report.py``)."""

from __future__ import annotations

from tagsure.errors import TagsureError


class CheckpointError(TagsureError):
    """A checkpoint could not be read, or holds something tagsure will not load."""
