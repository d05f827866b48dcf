"""The JSON round trip every config dataclass shares (model configs, LM configs).

A config is stored as JSON in a model file and read back with :meth:`JsonConfig.from_dict`,
which refuses keys it doesn't know (a typo or a file from a newer tagsure) by name instead of
dropping them.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, Self

from tagsure.errors import ConfigError


class JsonConfig:
    """Mixin for ``@dataclass`` configs: ``to_dict``, a checked ``from_dict``, user settings."""

    settings_name: ClassVar[str] = "model"  # in error messages: "unknown BiLSTM settings"
    data_derived: ClassVar[tuple[str, ...]] = ()  # sized from the data, not set by users
    # [training] defaults of this architecture where they differ from the BiLSTM's (a setting
    # the user gives wins): e.g. a pretrained encoder fine-tunes at 5e-5, not 2e-3
    training_defaults: ClassVar[dict[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.settings_name} settings {unknown}; known: {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def user_settings(cls) -> list[str]:
        """The settings a user may give in ``[model]``."""
        return [f.name for f in fields(cls) if f.name not in cls.data_derived]  # type: ignore[arg-type]
