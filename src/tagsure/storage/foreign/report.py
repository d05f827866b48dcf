"""The report of a foreign-checkpoint load: what matched, what did not, and what to do next."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from tagsure.storage.foreign.errors import CheckpointError
from tagsure.storage.foreign.keys import wrapper_names


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, reports as dicts and other objects as strings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Tensor):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def fields_dict(report: Any, **computed: Any) -> dict[str, Any]:
    """A report dataclass's fields and then ``computed``, JSON-ready (see :func:`jsonable`)."""
    values = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    return jsonable(values | computed)


@dataclass(frozen=True)
class KeyProblem:
    """One reason a checkpoint does not fit."""

    kind: str  # missing, unexpected, shape, dtype, or match (no key matched at all)
    key: str
    detail: str
    checkpoint_key: str | None = None
    expected_shape: tuple[int, ...] | None = None
    found_shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return fields_dict(self)


@dataclass
class LoadReport:
    """What :func:`load_into` did (or, inside a :class:`CheckpointMismatchError`, refused)."""

    source: str
    kind: str
    model: str
    container_key: str | None = None
    prefix_stripped: str = ""
    prefix_added: str = ""
    renamed: dict[str, str] = field(default_factory=dict)
    loaded_tensors: int = 0
    loaded_elements: int = 0
    model_tensors: int = 0
    model_elements: int = 0
    checkpoint_tensors: int = 0
    missing: list[str] = field(default_factory=list)  # left unloaded, by allow_missing
    unexpected: list[str] = field(default_factory=list)  # dropped, by ignore_unexpected
    dtype_casts: dict[str, tuple[str, str]] = field(default_factory=dict)
    skipped_non_tensors: list[str] = field(default_factory=list)
    problems: list[KeyProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the load happened (no problems)."""
        return not self.problems

    @property
    def prefix_transform(self) -> str:
        """Human description of the detected wrapper-prefix change."""
        parts = []
        if self.prefix_stripped:
            parts.append(
                f"stripped {self.prefix_stripped!r} ({wrapper_names(self.prefix_stripped)})"
            )
        if self.prefix_added:
            parts.append(f"added {self.prefix_added!r} ({wrapper_names(self.prefix_added)})")
        return "; ".join(parts) if parts else "none (keys used as they are)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``json.dumps(report.to_dict())`` works)."""
        return fields_dict(self, ok=self.ok, prefix_transform=self.prefix_transform)

    def format_table(self) -> str:
        """Readable multi-line summary; for a failed load, the table of every problem."""
        lines = []
        if self.ok:
            lines.append(f"Loaded {self.source} into {self.model}")
        else:
            lines.append(
                f"Checkpoint {self.source} does not fit {self.model}; nothing was loaded "
                "(the model is unchanged)."
            )
        lines.append(f"  format        : {self.kind}")
        lines.append(f"  container key : {self.container_key or '(top level)'}")
        lines.append(f"  key prefix    : {self.prefix_transform}")
        if self.renamed:
            lines.append(f"  renamed       : {len(self.renamed)} key(s) by rename rules")
        if self.ok:
            lines.append(
                f"  loaded        : {self.loaded_tensors} of {self.model_tensors} model tensors, "
                f"{self.loaded_elements:,} of {self.model_elements:,} elements"
            )
        if self.dtype_casts:
            pairs = sorted({f"{a} -> {b}" for a, b in self.dtype_casts.values()})
            lines.append(f"  dtype casts   : {len(self.dtype_casts)} tensor(s), {', '.join(pairs)}")
        if self.skipped_non_tensors:
            lines.append(f"  non-tensors   : {len(self.skipped_non_tensors)} entries ignored")
        if self.missing:
            verb = "left unloaded" if self.ok else "may stay unloaded"
            lines.append(f"  {verb} (allowed by allow_missing): {len(self.missing)}")
            lines.extend(f"      {key}" for key in self.missing)
        if self.unexpected:
            verb = "dropped from checkpoint" if self.ok else "may be dropped"
            lines.append(f"  {verb} (allowed by ignore_unexpected): {len(self.unexpected)}")
            lines.extend(f"      {key}" for key in self.unexpected)
        if self.renamed:
            lines.append("  renames:")
            lines.extend(f"      {old} -> {new}" for old, new in self.renamed.items())
        if self.problems:
            lines.append("")
            lines.append(_problem_table(self.problems))
            lines.append("")
            lines.extend(_hints(self))
        return "\n".join(lines)


def _problem_table(problems: Sequence[KeyProblem]) -> str:
    order = {"missing": 0, "unexpected": 1, "shape": 2, "dtype": 3, "match": 4}
    rows = sorted(problems, key=lambda p: (order.get(p.kind, 9), p.key))
    width_kind = max(len("problem"), *(len(p.kind) for p in rows))
    width_key = min(60, max(len("key"), *(len(p.key) for p in rows)))
    header = f"  {'problem':<{width_kind}}  {'key':<{width_key}}  detail"
    out = [header, "  " + "-" * (len(header) + 20)]
    for p in rows:
        out.append(f"  {p.kind:<{width_kind}}  {p.key:<{width_key}}  {p.detail}")
    return "\n".join(out)


def _suggest_patterns(keys: Iterable[str]) -> list[str]:
    heads = sorted({k.split(".")[0] + (".*" if "." in k else "") for k in keys})
    return heads[:6]


def _hints(report: LoadReport) -> list[str]:
    kinds = {p.kind for p in report.problems}
    hints = ["What to do next:"]
    if "match" in kinds:
        hints.append(
            "  - No checkpoint key matches the model even after prefix detection: this is "
            "probably a checkpoint of another architecture. Compare the key names above, "
            "and map them with rename=[(regex, replacement), ...] if they are the same "
            "layers under other names."
        )
    if "missing" in kinds:
        keys = [p.key for p in report.problems if p.kind == "missing"]
        hints.append(
            "  - Missing keys: if these layers should keep their current (freshly initialised) "
            f"values, allow it explicitly, e.g. allow_missing={_suggest_patterns(keys)!r}."
        )
    if "unexpected" in kinds:
        keys = [p.key for p in report.problems if p.kind == "unexpected"]
        hints.append(
            "  - Unexpected keys: if the checkpoint carries layers this model does not have "
            f"(an extra head, an LM head, a loss module...), drop them explicitly, e.g. "
            f"ignore_unexpected={_suggest_patterns(keys)!r}; if they are the same layers "
            "under other names, map them with rename=[(regex, replacement)]."
        )
    if "shape" in kinds:
        key = next(p.key for p in report.problems if p.kind == "shape")
        seg = key.split(".")[0]
        nested = "." in key
        regex = rf"^{seg}\." if nested else rf"^{seg}$"
        moved = f"checkpoint_{seg}." if nested else f"checkpoint_{seg}"
        pattern = f"{seg}.*" if nested else seg
        moved_pattern = f"checkpoint_{pattern}"
        hints.append(
            "  - Shape mismatches mean the checkpoint was trained for another configuration "
            "(e.g. another label set or vocabulary): use a model built with the checkpoint's "
            "sizes. To deliberately keep this model's freshly initialised layer instead, "
            "rename the checkpoint's one out of the way and allow both sides, e.g. "
            f"rename=[({regex!r}, {moved!r})], ignore_unexpected=[{moved_pattern!r}], "
            f"allow_missing=[{pattern!r}]."
        )
    if "dtype" in kinds:
        hints.append(
            "  - dtype mismatches between non-floating tensors are not cast automatically: "
            "convert the checkpoint tensors to the model's dtype first."
        )
    return hints


class CheckpointMismatchError(CheckpointError):
    """The checkpoint does not fit the model; nothing was loaded. ``report`` says why."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report
