"""Train a spaCy NER pipeline on CoNLL-2003 as a tagsure peer and write one JSON result.

Run with the peers venv (created by benchmarks/peers/setup.sh):

    benchmarks/.venv-peers/bin/python benchmarks/peers/spacy_peer.py \
        --train train.txt --dev dev.txt --out-json spacy.json --workdir runs/peers/spacy \
        --max-minutes 30

What a spaCy user would do, step by step, through spaCy's own CLI:
1. `spacy convert -c ner -n 10` on copies of the CoNLL files without -DOCSTART- lines. The
   `ner` converter takes the first column as the token and the LAST column as the IOB tag, so
   the 4-column CoNLL-2003 files are read correctly. It only recognises the document marker
   written "-DOCSTART- -X- O O" (the files have "-DOCSTART- -X- -X- O", which it would keep as
   a one-token sentence), hence the copies; `-n 10` groups every 10 sentences into one Doc, as
   spaCy's converter itself recommends.
2. `spacy init config -l en -p ner -o efficiency` (blank English pipeline, tok2vec + ner, CPU),
   used unchanged.
3. `spacy train` with that config and `--code _spacy_hooks.py`, which times the dev
   evaluations, records the learning curve and ends training once the training time (dev
   evaluation excluded) reaches --max-minutes; see that file.
Then model-best is loaded in this process (not the training one) to time prediction with
nlp.pipe on pre-tokenized Docs and to re-evaluate dev.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import _common as common

common.install_network_guard()

import spacy  # noqa: E402
from spacy.tokens import Doc  # noqa: E402
from spacy.training import Corpus, Example  # noqa: E402

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="CoNLL-2003 train file")
    parser.add_argument("--dev", type=Path, required=True, help="CoNLL-2003 dev file")
    parser.add_argument("--out-json", type=Path, required=True)
    parser.add_argument(
        "--workdir", type=Path, required=True, help="scratch dir for data, config, models, logs"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="training-time budget (dev evaluation not counted)",
    )
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=0,
        help="training.max_epochs override (0 = spaCy default: no limit)",
    )
    parser.add_argument("--train-limit", type=int, help="use only the first N train sentences")
    parser.add_argument("--dev-limit", type=int, help="use only the first N dev sentences")
    parser.add_argument("--seed", type=int, default=0, help="training.seed (spaCy default 0)")
    parser.add_argument(
        "--n-sents", type=int, default=10, help="sentences per Doc for `spacy convert -n`"
    )
    parser.add_argument(
        "--predict-batch-size",
        type=int,
        default=1000,
        help="nlp.pipe batch_size (1000 = nlp.batch_size in the config)",
    )
    return parser.parse_args(argv)


def run(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
    """Run a command, echoing its output and appending it to log_path; raise on failure."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed with exit {proc.returncode} (log: {log_path}): {' '.join(cmd)}"
        )


def sentence_tokens(sentences: list[list[str]]) -> list[tuple[list[str], list[str]]]:
    """(words, IOB tags) per sentence; the tag is the last column."""
    out = []
    for sentence in sentences:
        columns = [line.split() for line in sentence]
        out.append(([c[0] for c in columns], [c[-1] for c in columns]))
    return out


def load_events(path: Path) -> tuple[list[dict], dict | None]:
    evals, end = [], None
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event["event"] == "eval":
                evals.append(event)
            elif event["event"] == "end":
                end = event
    return evals, end


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir.resolve()
    data_dir, corpus_dir = workdir / "data", workdir / "corpus"
    output_dir, config_path = workdir / "spacy-train", workdir / "config.cfg"
    log_path, events_path = workdir / "spacy.log", workdir / "events.jsonl"
    netlog = workdir / "network-attempts.log"
    workdir.mkdir(parents=True, exist_ok=True)
    corpus_dir.mkdir(exist_ok=True)
    for stale in (log_path, events_path, netlog):
        stale.unlink(missing_ok=True)
    # ANSI_COLORS_DISABLED: plain text from spaCy's printer (wasabi) in the log file.
    env = {**os.environ, common.NETLOG_ENV: str(netlog), "ANSI_COLORS_DISABLED": "1"}
    os.environ[common.NETLOG_ENV] = str(netlog)
    notes: list[str] = []

    train_sents = common.read_conll(args.train, args.train_limit)
    dev_sents = common.read_conll(args.dev, args.dev_limit)
    common.write_conll(train_sents, data_dir / "train.txt")
    common.write_conll(dev_sents, data_dir / "dev.txt")
    train_words = common.count_tokens(train_sents)
    dev_tokens = common.count_tokens(dev_sents)

    # 1. Convert (writes corpus/train.spacy and corpus/dev.spacy).
    for split in ("train", "dev"):
        run(
            common.guarded_module_cmd(
                "spacy",
                "convert",
                str(data_dir / f"{split}.txt"),
                str(corpus_dir),
                "--converter",
                "ner",
                "--n-sents",
                str(args.n_sents),
                "--file-type",
                "spacy",
            ),
            log_path,
            env,
        )
    # 2. Default config, unchanged.
    run(
        common.guarded_module_cmd(
            "spacy",
            "init",
            "config",
            str(config_path),
            "--lang",
            "en",
            "--pipeline",
            "ner",
            "--optimize",
            "efficiency",
            "--force",
        ),
        log_path,
        env,
    )
    # 3. Train; the hooks read the budget and the events path from the environment.
    train_env = {
        **env,
        "TAGSURE_PEERS_MAX_SECONDS": str(args.max_minutes * 60.0),
        "TAGSURE_PEERS_SPACY_EVENTS": str(events_path),
    }
    wall_start = time.perf_counter()
    run(
        common.guarded_module_cmd(
            "spacy",
            "train",
            str(config_path),
            "--output",
            str(output_dir),
            "--code",
            str(HERE / "_spacy_hooks.py"),
            "--gpu-id",
            "-1",
            "--paths.train",
            str(corpus_dir / "train.spacy"),
            "--paths.dev",
            str(corpus_dir / "dev.spacy"),
            "--training.seed",
            str(args.seed),
            "--training.max_epochs",
            str(args.max_epochs),
        ),
        log_path,
        train_env,
    )
    wall_seconds = time.perf_counter() - wall_start
    train_peak_rss = common.peak_rss_mb(children=True)

    evals, end = load_events(events_path)
    if not evals or end is None:
        raise RuntimeError(f"no training events recorded in {events_path}")
    curve = [
        {
            "minutes": round(e["train_seconds"] / 60.0, 4),
            "wall_minutes": round(e["wall_seconds"] / 60.0, 4),
            "epoch": round(e["words"] / train_words, 4),
            "step": e["step"],
            "dev_f1": round(e["ents_f"] or 0.0, 6),
        }
        for e in evals
    ]

    # Prediction speed and re-evaluation with model-best, loaded in this (fresh) process.
    model_dir = output_dir / "model-best"
    nlp = spacy.load(model_dir)
    dev_examples = list(Corpus(str(corpus_dir / "dev.spacy"))(nlp))
    reload_f1 = nlp.evaluate(dev_examples)["ents_f"] or 0.0

    sentences = sentence_tokens(dev_sents)

    def docs() -> list[Doc]:
        return [Doc(nlp.vocab, words=words) for words, _ in sentences]

    list(nlp.pipe(docs()[: args.predict_batch_size], batch_size=args.predict_batch_size))
    inputs = docs()
    start = time.perf_counter()
    predicted = list(nlp.pipe(inputs, batch_size=args.predict_batch_size))
    predict_seconds = time.perf_counter() - start
    # The same predictions scored against gold, one Doc per sentence (as flair sees the data).
    sentence_examples = [
        Example(pred, Doc(nlp.vocab, words=words, ents=tags))
        for pred, (words, tags) in zip(predicted, sentences, strict=True)
    ]
    sentence_f1 = nlp.get_pipe("ner").score(sentence_examples)["ents_f"] or 0.0

    best = max(curve, key=lambda point: point["dev_f1"])
    common.check_network_log(netlog)
    notes += [
        f"data: -DOCSTART- lines dropped; `spacy convert -c ner -n {args.n_sents}` "
        f"(one Doc per {args.n_sents} sentences, for training and spaCy's dev evaluation)",
        "config: `spacy init config -l en -p ner -o efficiency`, unchanged; seed "
        f"{args.seed}; CPU, spaCy/thinc numpy ops (single-threaded)",
        "minutes = training time without dev evaluation (checkpoint saving included); "
        "wall_minutes (per curve point) include evaluation",
        "curve epoch = words seen / training words (spaCy counts epochs only as whole "
        "passes); a point every eval_frequency (200) steps, the first at step 0",
        "time cap checked after each evaluation, so it can be overshot by up to one "
        "eval interval" + (" (budget hit)" if end["time_budget_hit"] else " (not hit)"),
        "train_tokens_per_s = words seen / training time; spaCy's own log also prints "
        "elapsed time that includes evaluation",
        f"predict timed on {len(sentences)} pre-tokenized dev sentences (one Doc each), "
        f"list(nlp.pipe(docs, batch_size={args.predict_batch_size})) after a warm-up",
        f"dev F1 of model-best with one Doc per sentence: {sentence_f1:.4f}",
        "peak_rss_mb: the largest child process (spacy train); prediction process peak "
        f"{common.peak_rss_mb():.0f} MB",
        f"dev_f1_after_reload: model-best loaded in a fresh process, evaluated on the same "
        f"dev.spacy as during training (best curve point at step {best['step']})",
    ]
    result = {
        "name": "spacy",
        "version": spacy.__version__,
        "config": {
            "init_config": "-l en -p ner -o efficiency",
            "pipeline": nlp.pipe_names,
            "labels": list(nlp.get_pipe("ner").labels),
            "training": {
                key: nlp.config["training"][key]
                for key in (
                    "max_epochs",
                    "max_steps",
                    "patience",
                    "eval_frequency",
                    "dropout",
                    "accumulate_gradient",
                    "seed",
                )
            },
            "batcher": {
                key: value
                for key, value in nlp.config["training"]["batcher"].items()
                if not key.startswith("@")
            }
            | {"@batchers": nlp.config["training"]["batcher"]["@batchers"]},
            "optimizer": nlp.config["training"]["optimizer"]["@optimizers"],
            "max_minutes": args.max_minutes,
            "n_sents_per_doc": args.n_sents,
            "train_sentences": len(train_sents),
            "dev_sentences": len(dev_sents),
            "train_words": train_words,
            "device": "cpu",
        },
        "curve": curve,
        "best_dev_f1": best["dev_f1"],
        "train_minutes": round(end["train_seconds"] / 60.0, 4),
        "wall_minutes": round(wall_seconds / 60.0, 4),
        "eval_minutes": round(end["eval_seconds"] / 60.0, 4),
        "epochs": math.floor(end["words"] / train_words),
        "epochs_fraction": round(end["words"] / train_words, 4),
        "steps": end["steps"],
        "train_tokens": end["words"],
        "train_tokens_per_s": round(end["words"] / end["train_seconds"], 1),
        "predict_tokens_per_s": round(dev_tokens / predict_seconds, 1),
        "dev_tokens": dev_tokens,
        "peak_rss_mb": round(train_peak_rss, 1),
        "model_size_mb": round(common.path_size_bytes(model_dir) / 2**20, 3),
        "model_size_bytes": common.path_size_bytes(model_dir),
        "dev_f1_after_reload": round(reload_f1, 6),
        "dev_f1_sentence_docs": round(sentence_f1, 6),
        "notes": notes,
    }
    common.write_result(result, args.out_json)
    print(common.summary_line(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
