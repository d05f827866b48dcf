"""The two errors of foreign-checkpoint loading."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tagsure.errors import TagsureError

if TYPE_CHECKING:
    from tagsure.storage.foreign.report import LoadReport


class CheckpointError(TagsureError):
    """A checkpoint could not be read, or holds something tagsure will not load."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint does not fit the model; nothing was loaded. ``report`` says why."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report
