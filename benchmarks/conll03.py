"""CoNLL-2003 English: tagsure's BiLSTM-CRF against flair and spaCy, trained on this machine.

Runs the three trainings one after the other (never in parallel: they share 2 cores), each in
its own process so peak memory is its own, then prints a table and the ratios and writes JSON.

    .venv/bin/python benchmarks/conll03.py                       # all three, ~75 minutes
    .venv/bin/python benchmarks/conll03.py --only tagsure        # just tagsure

Peers run from their own virtual environment (benchmarks/peers/setup.sh creates it), so their
pins never constrain tagsure's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _portable import portable  # beside this script: no machine paths in results

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data"))
PEERS_PYTHON = REPO / "benchmarks" / ".venv-peers" / "bin" / "python"
RESULTS = REPO / "benchmarks" / "results"

RELOAD_SCRIPT = """
import json, sys
from tagsure import Tagger, load_corpus
tagger = Tagger.load(sys.argv[1])
corpus = load_corpus(sys.argv[2])
tags, _ = tagger.tag([s.tokens for s in corpus.sentences])
json.dump({"tags": tags, "f1": tagger.evaluate(corpus).micro.f1}, open(sys.argv[3], "w"))
"""


def reload_in_fresh_process(model_path: Path, dev_path: Path, out: Path) -> dict:
    """Load the model in a new interpreter and tag dev: ``{"tags": [...], "f1": ...}``."""
    subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(model_path), str(dev_path), str(out)], check=True
    )
    return json.loads(out.read_text())


def run_tagsure(args: argparse.Namespace) -> dict:
    """Train, time prediction, reload in a fresh process; runs inside its own process."""
    import torch

    from tagsure import TrainConfig, load_corpus, train

    torch.set_num_threads(args.threads)
    name = getattr(args, "name", "tagsure")  # other benchmarks reuse this with their own model
    work = Path(args.workdir) / name
    train_path, dev_path = DATA / "conll2003-en" / "train.txt", DATA / "conll2003-en" / "dev.txt"
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "model": getattr(args, "model", {}),
            "training": {
                "max_minutes": args.minutes,
                "epochs": args.max_epochs,
                "seed": args.seed,
                **getattr(args, "training", {}),
            },
        }
    )
    model_path = work / "conll03.tagsure"
    result = train(config, out=model_path)
    tagger = result.tagger
    dev = load_corpus(dev_path)
    sentences = [s.tokens for s in dev.sentences]
    tokens = sum(map(len, sentences))
    tagger.tag(sentences[:500])  # warm-up
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        in_memory, _ = tagger.tag(sentences)
        timings.append(time.perf_counter() - started)
    reloaded = reload_in_fresh_process(model_path, dev_path, work / "reloaded.json")
    best = next(r for r in result.history if r.epoch == result.best_epoch)
    return {
        "name": name,
        "config": config.to_dict(),
        "curve": [
            {"minutes": r.minutes, "epoch": r.epoch, "dev_f1": r.dev["f1"]} for r in result.history
        ],
        "best_dev_f1": best.dev["f1"],
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "train_minutes": result.history[-1].minutes,
        "epochs": len(result.history),
        "train_tokens": result.train_tokens,
        "train_tokens_per_s": result.train_tokens / result.train_seconds,
        "epoch_tokens_per_s": [r.train_tokens_per_s for r in result.history],
        "predict_tokens_per_s": tokens / statistics.median(timings),
        "dev_tokens": tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_size_mb": model_path.stat().st_size / 2**20,
        "dev_f1_after_reload": reloaded["f1"],
        "dev_tags_identical_after_reload": reloaded["tags"] == in_memory,
        "threads": args.threads,
    }


def run_peer(name: str, args: argparse.Namespace) -> dict:
    if not PEERS_PYTHON.exists():
        subprocess.run(["bash", str(REPO / "benchmarks" / "peers" / "setup.sh")], check=True)
    out = Path(args.workdir) / f"{name}.json"
    command = [
        str(PEERS_PYTHON),
        str(REPO / "benchmarks" / "peers" / f"{name}_peer.py"),
        "--train",
        str(DATA / "conll2003-en" / "train.txt"),
        "--dev",
        str(DATA / "conll2003-en" / "dev.txt"),
        "--out-json",
        str(out),
        "--workdir",
        str(Path(args.workdir) / name),
        "--max-minutes",
        str(args.peer_minutes or args.minutes),
        "--seed",
        str(args.seed),
    ]
    if name == "flair":
        command += ["--max-epochs", str(args.flair_epochs)]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def in_subprocess(name: str, args: argparse.Namespace) -> dict:
    """Run one contestant in a fresh process so memory and threads are its own."""
    out = Path(args.workdir) / f"{name}.json"
    if name != "tagsure":
        return run_peer(name, args)
    command = [
        sys.executable,
        __file__,
        "--part",
        name,
        "--workdir",
        args.workdir,
        "--minutes",
        str(args.minutes),
        "--max-epochs",
        str(args.max_epochs),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
    ]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def f1_at(curve: list[dict], minutes: float) -> float:
    """Best dev F1 reached within ``minutes`` of training."""
    return max((p["dev_f1"] for p in curve if p["minutes"] <= minutes), default=0.0)


def report(results: dict[str, dict]) -> str:
    rows = [("", *results)]
    fields = [
        ("best dev F1", lambda r: f"{100 * r['best_dev_f1']:.2f}"),
        (
            "dev F1 after reload",
            lambda r: (
                "-"
                if r.get("dev_f1_after_reload") is None
                else f"{100 * r['dev_f1_after_reload']:.2f}"
            ),
        ),
        ("training minutes", lambda r: f"{r['train_minutes']:.1f}"),
        ("epochs", lambda r: f"{r['epochs']}"),
        ("train tokens/s", lambda r: f"{r['train_tokens_per_s']:,.0f}"),
        ("predict tokens/s", lambda r: f"{r['predict_tokens_per_s']:,.0f}"),
        ("peak RSS (MB)", lambda r: f"{r['peak_rss_mb']:,.0f}"),
        ("model size (MB)", lambda r: f"{r['model_size_mb']:.1f}"),
    ]
    for minutes in (5, 10, 20, 30):
        fields.append(
            (f"dev F1 by {minutes} min", lambda r, m=minutes: f"{100 * f1_at(r['curve'], m):.2f}")
        )
    rows += [(label, *(fn(r) for r in results.values())) for label, fn in fields]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    ours = results.get("tagsure")
    for name, peer in results.items():
        if name == "tagsure" or ours is None:
            continue
        train_ratio = ours["train_tokens_per_s"] / peer["train_tokens_per_s"]
        predict_ratio = ours["predict_tokens_per_s"] / peer["predict_tokens_per_s"]
        delta = 100 * (ours["best_dev_f1"] - peer["best_dev_f1"])
        lines.append(
            f"tagsure / {name}: train tokens/s x{train_ratio:.1f}, predict tokens/s "
            f"x{predict_ratio:.1f}, best dev F1 {delta:+.2f} points"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["tagsure", "spacy", "flair"],
        default=["tagsure", "spacy", "flair"],
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget each")
    parser.add_argument("--peer-minutes", type=float, help="budget for the peers (default: same)")
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument(
        "--flair-epochs",
        type=int,
        default=3,
        help="flair needs ~7 minutes an epoch here; its speed is per token",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/tagsure-bench")
    parser.add_argument("--out", type=Path, default=RESULTS / "conll03.json")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.part:
        result = run_tagsure(args)
        (Path(args.workdir) / f"{args.part}.json").write_text(json.dumps(result, indent=2))
        return
    if not (DATA / "conll2003-en" / "train.txt").exists():
        sys.exit(f"CoNLL-2003 not found under {DATA}; set TAGSURE_SHARED_DATA")
    results = {}
    for name in args.only:
        print(f"== {name}", flush=True)
        results[name] = in_subprocess(name, args)
        print(f"   best dev F1 {100 * results[name]['best_dev_f1']:.2f}", flush=True)
    table = report(results)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/conll03.py " + " ".join(sys.argv[1:])
    args.out.write_text(
        json.dumps(
            portable({"command": command.strip(), "results": results, "table": table}), indent=2
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
