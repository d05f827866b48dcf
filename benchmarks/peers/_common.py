"""Helpers shared by the peer benchmark scripts (flair_peer.py, spacy_peer.py).

Stdlib only: this module is imported both by the peer scripts and, through the network guard,
by the spaCy CLI subprocesses they launch.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
from pathlib import Path

# Everything must run offline; these make Hugging Face libraries (pulled in by flair) refuse to
# download instead of hanging on a timeout. The network guard below catches everything else.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
# File to which the guard appends every refused network attempt. Inherited by subprocesses so
# that the parent sees attempts even where a library caught the exception and carried on.
NETLOG_ENV = "TAGSURE_PEERS_NETLOG"

RESULT_KEYS = (
    "name",
    "version",
    "config",
    "curve",
    "best_dev_f1",
    "train_minutes",
    "epochs",
    "train_tokens",
    "train_tokens_per_s",
    "predict_tokens_per_s",
    "dev_tokens",
    "peak_rss_mb",
    "model_size_mb",
    "dev_f1_after_reload",
    "notes",
)


class NetworkAccessError(RuntimeError):
    """Raised when code in a peer run tries to reach the network."""


def _is_local(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host)
    return host in ("localhost", "::1", "") or host.startswith("127.")


def install_network_guard() -> None:
    """Make every non-loopback connection or DNS lookup raise NetworkAccessError.

    Also logs each attempt to stderr and to $TAGSURE_PEERS_NETLOG, because some libraries
    swallow exceptions from failed downloads; the peer scripts fail if that log is non-empty.
    """
    os.environ.update(OFFLINE_ENV)
    if getattr(socket, "_tagsure_guarded", False):
        return

    def refuse(what: str) -> None:
        message = f"tagsure peers: network access attempted ({what}); runs must be offline"
        print(f"ERROR: {message}", file=sys.stderr, flush=True)
        log_path = os.environ.get(NETLOG_ENV)
        if log_path:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"pid {os.getpid()}: {what}\n")
        raise NetworkAccessError(message)

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            refuse(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            refuse(f"connect {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            refuse(f"DNS lookup {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    socket._tagsure_guarded = True


def guarded_module_cmd(module: str, *args: str) -> list[str]:
    """Command line running `python -m MODULE ARGS` (e.g. the spaCy CLI) under the guard."""
    boot = (
        "import runpy, sys; sys.path.insert(0, sys.argv[1]); import _common; "
        "_common.install_network_guard(); sys.argv = sys.argv[2:]; "
        "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", boot, str(Path(__file__).resolve().parent), module, *args]


def check_network_log(path: Path) -> None:
    """Fail loudly if any (possibly swallowed) network attempt was logged."""
    if path.exists() and path.read_text(encoding="utf-8").strip():
        raise NetworkAccessError(f"network access attempted during the run, see {path}")


def read_conll(path: Path, limit: int | None = None) -> list[list[str]]:
    """Read a CoNLL-2003 file as sentences of raw lines, dropping -DOCSTART- pseudo-sentences.

    -DOCSTART- lines are document markers, not text: neither peer should train on them, and
    spaCy's converter does not even recognise the '-DOCSTART- -X- -X- O' form of the marker.
    """
    sentences: list[list[str]] = []
    current: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                if current:
                    sentences.append(current)
                    current = []
                    if limit is not None and len(sentences) >= limit:
                        return sentences
                continue
            if line.startswith("-DOCSTART-"):
                continue
            current.append(line)
    if current and (limit is None or len(sentences) < limit):
        sentences.append(current)
    return sentences


def write_conll(sentences: list[list[str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for sentence in sentences:
            handle.write("\n".join(sentence))
            handle.write("\n\n")


def count_tokens(sentences: list[list[str]]) -> int:
    return sum(len(sentence) for sentence in sentences)


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size in MiB (Linux reports ru_maxrss in KiB).

    With children=True: the largest peak of any waited-for child process.
    """
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def path_size_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_result(result: dict, out_json: Path) -> None:
    missing = [key for key in RESULT_KEYS if key not in result]
    if missing:
        raise ValueError(f"result is missing keys: {missing}")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_json.with_suffix(out_json.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out_json)


def summary_line(result: dict) -> str:
    reload_f1 = result["dev_f1_after_reload"]
    reload_text = "n/a" if reload_f1 is None else f"{reload_f1:.4f}"
    return (
        f"{result['name']} {result['version']}: best dev F1 {result['best_dev_f1']:.4f}"
        f" (after reload {reload_text}) | {result['epochs']} epochs in"
        f" {result['train_minutes']:.2f} min | train {result['train_tokens_per_s']:.0f} tok/s"
        f" | predict {result['predict_tokens_per_s']:.0f} tok/s | peak RSS"
        f" {result['peak_rss_mb']:.0f} MB | model {result['model_size_mb']:.1f} MB"
    )
