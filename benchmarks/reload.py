"""F1 before and after reload: flair's SequenceTagger against tagsure, same CoNLL-2003 slice.

Both train one-hot/learned word embeddings + character features + CRF on the first N training
sentences, save, reload in a fresh process and score CoNLL-2003 dev again.

    .venv/bin/python benchmarks/reload.py                  # ~6 minutes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _portable import portable  # beside this script: no machine paths in results
from conll03 import DATA, PEERS_PYTHON, REPO, RESULTS, reload_in_fresh_process


def run_tagsure(train_path: Path, dev_path: Path, work: Path, epochs: int) -> dict:
    from tagsure import TrainConfig, load_corpus, train

    config = TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "training": {"epochs": epochs, "seed": 1},
        }
    )
    model_path = work / "tagsure" / "slice.tagsure"
    tagger = train(config, out=model_path).tagger
    dev = load_corpus(dev_path)
    in_memory_tags, _ = tagger.tag([s.tokens for s in dev.sentences])
    reloaded = reload_in_fresh_process(model_path, dev_path, work / "tagsure" / "reloaded.json")
    return {
        "f1_in_memory": tagger.evaluate(dev).micro.f1,
        "f1_after_reload": reloaded["f1"],
        "identical_tags": reloaded["tags"] == in_memory_tags,
    }


def run_flair(train_path: Path, dev_path: Path, work: Path, epochs: int, limit: int) -> dict:
    out = work / "flair.json"
    subprocess.run(
        [
            str(PEERS_PYTHON),
            str(REPO / "benchmarks" / "peers" / "flair_peer.py"),
            "--train",
            str(train_path),
            "--dev",
            str(dev_path),
            "--out-json",
            str(out),
            "--workdir",
            str(work / "flair"),
            "--max-epochs",
            str(epochs),
            "--max-minutes",
            "60",
            "--train-limit",
            str(limit),
        ],
        check=True,
    )
    result = json.loads(out.read_text())
    return {
        "f1_in_memory": result["dev_f1_final"],
        "f1_after_reload": result["dev_f1_after_reload"],
        "identical_tags": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=2000, help="training slice size")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tagsure-reload"))
    parser.add_argument("--out", type=Path, default=RESULTS / "reload.json")
    args = parser.parse_args()
    from tagsure import load_corpus

    args.workdir.mkdir(parents=True, exist_ok=True)
    train_full, dev_path = DATA / "conll2003-en" / "train.txt", DATA / "conll2003-en" / "dev.txt"
    sentences = load_corpus(train_full).sentences[: args.sentences]
    train_path = args.workdir / "train-slice.txt"
    train_path.write_text(
        "".join(
            "".join(f"{t} {g}\n" for t, g in zip(s.tokens, s.tags or [], strict=True)) + "\n"
            for s in sentences
        )
    )
    results = {
        # flair reads the 4-column original and takes the same first N sentences itself.
        "flair 0.15.1": run_flair(train_full, dev_path, args.workdir, args.epochs, args.sentences),
        "tagsure": run_tagsure(train_path, dev_path, args.workdir, args.epochs),
    }
    lines = [f"{'':14}{'dev F1 in memory':>18}{'after reload':>14}{'same tags':>11}"]
    for name, r in results.items():
        same = "-" if r["identical_tags"] is None else ("yes" if r["identical_tags"] else "NO")
        lines.append(
            f"{name:14}{100 * r['f1_in_memory']:>18.2f}"
            f"{100 * r['f1_after_reload']:>14.2f}{same:>11}"
        )
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/reload.py " + " ".join(sys.argv[1:])
    args.out.write_text(
        json.dumps(
            portable(
                {
                    "command": command.strip(),
                    "train_sentences": args.sentences,
                    "epochs": args.epochs,
                    "results": results,
                    "table": table,
                }
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
