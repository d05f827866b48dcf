"""Peak memory of loading a model file, against the file's size.

Builds a BiLSTM-CRF tagger sized to all of CoNLL-2003 train (its ~21k-word vocabulary, 300-d
word embeddings, a 512-unit BiLSTM: a file of tens of MB; the weights are as initialised, since
their values don't change the memory), saves it, and then, in a fresh process for each way of
loading, measures the resident set just before loading (after the imports) and its high-water
mark after (``VmHWM``), from three baselines: cold (right after the imports), warm (after a tiny
tagger was loaded and run once, so torch's one-off costs, kernel code pages and allocator pools,
are not counted as the file's) and twin (after a model of the same shapes was loaded, run and
dropped, its memory trimmed and the high-water mark reset: the math libraries' buffer pools,
sized by the matrix shapes, are then warm too, as for a server's next model).
``read_model_file`` maps the file and touches every tensor. The bar: peak minus baseline at most
1.2x the file size. ``Tagger.load`` also re-runs the fingerprint probe (one sentence at a time on
one thread, oneDNN off, so no weight copy is packed); the row "then predict" is a first batched
prediction after a load without the check: oneDNN packs a copy of the LSTM weights on each call.

    .venv/bin/python benchmarks/load_memory.py          # ~1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _portable import portable  # beside this script: no machine paths in results

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data")) / "conll2003-en"
RESULTS = REPO / "benchmarks" / "results"

# Run in a fresh interpreter: imports first, then the baseline, then one way of loading.
_MEASURE = """
import ctypes, gc, sys, torch
from tagsure import Tagger
from tagsure.storage.model_file import read_model_file
torch.set_num_threads(1)

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

how, path, warm, small, twin = sys.argv[1:6]
if warm == "warm":  # torch's one-off costs (kernel code pages, pools) are not the file's:
    Tagger.load(small).predict(["Peter lives in Berlin ."])  # a tiny tagger, run once
elif warm == "twin":  # a same-shaped model loaded, run and dropped: math-library pools warm
    tagger = Tagger.load(twin)
    tagger.predict(["Peter lives in Berlin ."])
    del tagger
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory back to the system, not reused
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
baseline = status("VmRSS")
if how == "Tagger.load":
    Tagger.load(path)
elif how == "Tagger.load(verify=False)":
    Tagger.load(path, verify=False)
elif how == "Tagger.load(verify=False), then predict":
    tagger = Tagger.load(path, verify=False)
    tagger.tag(tagger.metadata["probe"])  # the same sentences the fingerprint check runs
else:
    document, tensors = read_model_file(path)
    sum(float(t.float().sum()) for t in tensors.values())  # touch every byte
print(baseline, status("VmHWM"))
"""

WAYS = (
    "Tagger.load",
    "Tagger.load(verify=False)",
    "Tagger.load(verify=False), then predict",
    "read_model_file",
)
# cold: baseline right after the imports; warm: after a tiny tagger was loaded and run once;
# twin: after a model of the same shapes was loaded, run and dropped (a server's second model).
WARM = ("cold", "warm", "twin")


def build_model(path: Path, train: Path, word_dim: int = 300, hidden_size: int = 512) -> None:
    from tagsure import TrainConfig
    from tagsure.data.schemes import TagScheme
    from tagsure.storage.fingerprint import choose_probe
    from tagsure.tagger import Tagger
    from tagsure.training.setup import prepare_model, read_corpora

    config = TrainConfig.from_dict(
        {
            "data": {"train": str(train), "min_word_count": 1},
            "model": {"word_dim": word_dim, "hidden_size": hidden_size},
        }
    )
    corpus, _ = read_corpora(config)
    scheme = TagScheme.parse(config.data.tag_scheme)
    vectorizer, model = prepare_model(config, corpus, scheme)
    probe = choose_probe([s.tokens for s in corpus.sentences])
    tagger = Tagger(
        model.eval(), vectorizer, scheme, corpus.scheme or TagScheme.IOB2, {"probe": probe}
    )
    tagger.save(path)


def measure(path: Path, how: str, warm: str, small: Path, twin: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, how, str(path), warm, str(small), str(twin)],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    baseline, peak = int(out[-2]), int(out[-1])
    size = path.stat().st_size
    return {
        "file_mb": size / 2**20,
        "baseline_mb": baseline / 2**20,
        "peak_mb": peak / 2**20,
        "added_mb": (peak - baseline) / 2**20,
        "added_over_file": (peak - baseline) / size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=DATA / "train.txt")
    parser.add_argument("--out", type=Path, default=RESULTS / "load_memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "large.tagsure"
        small = Path(work) / "small.tagsure"
        twin = Path(work) / "twin.tagsure"
        build_model(path, args.train)
        build_model(twin, args.train)  # the same shapes, other weights
        build_model(
            small, REPO / "src" / "tagsure" / "data" / "bundled" / "wikiann-en-train.txt", 16, 16
        )
        rows = {
            f"{how}, {warm}": measure(path, how, warm, small, twin) for how in WAYS for warm in WARM
        }
    print(
        f"{'load':<46} {'file MB':>8} {'base MB':>8} {'peak MB':>8} {'added MB':>9} {'x file':>7}"
    )
    for how, row in rows.items():
        print(
            f"{how:<46} {row['file_mb']:>8.1f} {row['baseline_mb']:>8.1f} {row['peak_mb']:>8.1f} "
            f"{row['added_mb']:>9.1f} {row['added_over_file']:>7.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(portable(rows), indent=2) + "\n")


if __name__ == "__main__":
    main()
