"""Every limit of the HTTP server, in one dataclass: what `tagsure serve` flags set.

The batching defaults were chosen by measurement (benchmarks/serve.py, docs/benchmarks.md): at
32 clients 8,192 tokens hold every waiting request (CoNLL-2003 documents of 1-20 sentences), and
tagged 5-15 % more words/s than 2,048 (BiLSTM-CRF 13,000 and MiniLM 4,200 against 11,800 and
3,600 on 2 cores); waiting a few milliseconds for company costs little beside a batch. The
other limits bound what one client can ask of the server.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tagsure.errors import ConfigError


@dataclass
class ServeSettings:
    model: Path
    host: str = "127.0.0.1"  # loopback: nothing outside this machine reaches the server
    port: int = 8080
    workers: int = 1  # processes, each with its own model and batcher
    threads: int = 0  # torch / ONNX Runtime threads per worker; 0: cores // workers
    max_batch_tokens: int = 8192  # tokens the model worker puts in one batch
    max_wait_ms: float = 5.0  # how long a batch waits for more requests once one is there
    max_queue: int = 256  # requests waiting for the model; more are refused with 429
    max_queue_seconds: float = 10.0  # work queued ahead, at the measured rate; more is 429
    timeout: float = 30.0  # seconds from arrival to answer; later answers are 504
    payload_limit: int = 2 * 1024 * 1024  # bytes of request body; more is 413
    max_client_batch: int = 256  # inputs in one request; more is 413
    api_key: str | None = None  # when set, /predict, /info and /metrics need the bearer key
    cors_origins: list[str] = field(default_factory=list)  # empty: no CORS headers at all
    grace: float = 30.0  # seconds SIGTERM waits for accepted requests to finish
    device: str = "cpu"  # where each worker's model runs: cpu, cuda, cuda:N, mps or auto
    precision: str = "fp32"  # its inference precision: fp32, bf16, fp16 or int8

    def torch_threads(self) -> int:
        """Threads per worker, so that workers × threads never exceeds the cores we may use."""
        if self.threads > 0:
            return self.threads
        return max(1, available_cores() // max(1, self.workers))

    def placed_model(self) -> tuple[Path, int, str, str]:
        """What ``load_model`` takes: the file, threads per worker, device and precision."""
        return self.model, self.torch_threads(), self.device, self.precision

    def public(self) -> dict[str, Any]:
        """The settings as /info shows them: everything but the API key."""
        values = asdict(self)
        values["model"] = str(self.model)
        values["api_key"] = self.api_key is not None
        values["threads"] = self.torch_threads()
        return values

    def to_env(self) -> dict[str, Any]:
        """JSON-ready values, to hand the settings to `--workers` processes."""
        values = asdict(self)
        values["model"] = str(self.model)
        return values

    @classmethod
    def from_env(cls, values: dict[str, Any]) -> ServeSettings:
        return cls(**{**values, "model": Path(values["model"])})


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """Bytes in ``2MB``, ``512kB``, ``1048576`` (binary units: 1 MB = 1,048,576 bytes)."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"not a size: {text!r}; write e.g. 2MB, 512kB or 1048576")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _UNITS[unit])
