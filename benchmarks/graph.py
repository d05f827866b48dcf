"""Eager PyTorch vs torch.compile vs ONNX Runtime on CoNLL-2003 dev, for every tagger type.

    .venv/bin/python benchmarks/graph.py     # ~25 minutes

1. Trains the transformer tagger from scratch on CoNLL-2003 train (eager, ``--minutes``,
   best-on-dev) and a BiLSTM-CRF (``--bilstm-minutes``, only so that its tags are meaningful).
2. For each: prediction tokens/s on all of dev in eager PyTorch, compiled PyTorch (Inductor,
   after a warm-up pass whose time is reported as compile time) and ONNX Runtime (exported
   with ``export_onnx``, Viterbi in NumPy); how many dev sentences get other tags than eager
   PyTorch; dev F1 of each runtime.
3. Training tokens/s eager vs compiled: the same batches of CoNLL train (forward, backward,
   clipping, AdamW), timed on a second pass over them (the first pass compiles; its time is
   reported as warm-up).

Prints a table and writes benchmarks/results/graph.json (after every phase, so a run cut short
keeps what it measured).

``--add NAME=MODEL`` adds trained taggers to the results already in the file: phase 2 for each,
and phase 3 for ``pretrained`` (a fresh MiniLM tagger, ``--pretrained DIR``, batches of 16) and
``bilstm+char-lms`` (a fresh BiLSTM with ``--char-lms FILE...``, features cached as in training):

    .venv/bin/python benchmarks/graph.py --train-batches 15 \
        --add pretrained=runs/transformer_conll03/tagsure-best.tagsure \
        --add bilstm+char-lms=runs/char_lm/conll03.tagsure --char-lms fwd.tagsure-lm bwd.tagsure-lm
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _portable import portable  # beside this script: no machine paths in results

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"

log = logging.getLogger("graph-benchmark")

MODELS: dict[str, dict[str, Any]] = {
    "bilstm": {"architecture": "bilstm"},  # the default BiLSTM-CRF
    "transformer": {"architecture": "transformer"},  # the default transformer, CRF head
}


def timed(function: Any, repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def differing(a: list[list[str]], b: list[list[str]]) -> tuple[int, int]:
    """(sentences, tokens) whose tags differ."""
    sentences = sum(x != y for x, y in zip(a, b, strict=True))
    tokens = sum(p != q for x, y in zip(a, b, strict=True) for p, q in zip(x, y, strict=True))
    return sentences, tokens


def train_tagger(kind: str, minutes: float, args: argparse.Namespace) -> dict[str, Any]:
    from tagsure import TrainConfig, train

    config = TrainConfig.from_dict(
        {
            "data": {
                "train": str(DATA / "conll2003-en" / "train.txt"),
                "dev": str(DATA / "conll2003-en" / "dev.txt"),
            },
            "model": MODELS[kind] | ({"dropout": 0.2} if kind == "transformer" else {}),
            "training": {"max_minutes": minutes, "epochs": 100, "seed": args.seed}
            | ({"learning_rate": 1e-3} if kind == "transformer" else {}),
        }
    )
    path = Path(args.workdir) / f"{kind}.tagsure"
    started = time.perf_counter()
    result = train(config, out=path)
    best = next(r for r in result.history if r.epoch == result.best_epoch)
    log.info("%s: best epoch %d dev F1 %.4f", kind, result.best_epoch, best.dev["f1"])
    return {
        "model_file": str(path),
        "config": config.to_dict(),
        "minutes": (time.perf_counter() - started) / 60,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "dev_f1": best.dev["f1"],
        "train_tokens_per_s_eager": result.train_tokens / max(result.train_seconds, 1e-9),
        "curve": [{"minutes": r.minutes, "f1": r.dev.get("f1")} for r in result.history],
    }


def prediction(kind: str, model_file: str, args: argparse.Namespace) -> dict[str, Any]:
    from tagsure import Tagger, load_corpus
    from tagsure.serving.onnx_runtime import OnnxTagger
    from tagsure.storage.onnx_export import export_onnx
    from tagsure.training.compiled import compile_tagger

    dev = load_corpus(DATA / "conll2003-en" / "dev.txt")
    sentences = [s.tokens for s in dev.sentences]
    tokens = sum(map(len, sentences))
    tagger = Tagger.load(model_file)
    out: dict[str, Any] = {"sentences": len(sentences), "tokens": tokens}

    tagger.tag(sentences[:500])  # warm-up
    seconds, eager_tags = timed(lambda: tagger.tag(sentences)[0], args.repeats)
    out["eager"] = {"tokens_per_s": tokens / seconds, "f1": tagger.evaluate(dev).micro.f1}
    log.info("%s eager: %.0f tokens/s", kind, tokens / seconds)

    compiled = compile_tagger(tagger, args.backend)
    started = time.perf_counter()
    compiled.tag(sentences)  # compiles every graph the dev batches need
    warmup = time.perf_counter() - started
    seconds, compiled_tags = timed(lambda: compiled.tag(sentences)[0], args.repeats)
    out["compiled"] = {
        "tokens_per_s": tokens / seconds,
        "warmup_seconds": warmup,
        "differing_sentences_tokens": differing(compiled_tags, eager_tags),
    }
    log.info("%s compiled: %.0f tokens/s (warm-up %.0f s)", kind, tokens / seconds, warmup)

    onnx_path = Path(args.workdir) / f"{kind}.onnx"
    started = time.perf_counter()
    export_onnx(tagger, onnx_path)
    exported = time.perf_counter() - started
    runtime = OnnxTagger(onnx_path, threads=args.threads)
    runtime.tag(sentences[:500])  # warm-up
    seconds, onnx_tags = timed(lambda: runtime.tag(sentences)[0], args.repeats)
    out["onnx"] = {
        "tokens_per_s": tokens / seconds,
        "export_seconds": exported,
        "file_bytes": onnx_path.stat().st_size,
        "f1": runtime.evaluate(dev).micro.f1,
        "differing_sentences_tokens": differing(onnx_tags, eager_tags),
    }
    log.info("%s onnx: %.0f tokens/s", kind, tokens / seconds)
    return out


def model_settings(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """[model] settings of a fresh tagger of ``kind`` for the training-throughput phase."""
    if kind == "pretrained":
        sys.path.insert(0, str(REPO))  # the repository root: tests/ holds the MiniLM locator
        from tests.hf_models import find_minilm  # noqa: E402

        return {"architecture": "pretrained", "pretrained": str(args.pretrained or find_minilm())}
    if kind == "bilstm+char-lms":
        return {"architecture": "bilstm", "char_language_models": args.char_lms}
    return MODELS[kind]


def training_throughput(kind: str, compiled: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Tokens/s of training steps on the same CoNLL train batches, fresh model, after warm-up."""
    from tagsure import TrainConfig, load_corpus
    from tagsure.data.batching import bucketed_batches
    from tagsure.data.schemes import TagScheme, convert
    from tagsure.training.compiled import compile_network
    from tagsure.training.setup import build_optimizer, prepare_model

    torch.manual_seed(args.seed)
    corpus = load_corpus(DATA / "conll2003-en" / "train.txt")
    config = TrainConfig.from_dict({"model": model_settings(kind, args)})
    encoder, model = prepare_model(config, corpus, TagScheme.BIOES)
    if kind == "pretrained":  # as fine-tuned: lr 5e-5, 16 sentences a batch (see pretrained.md)
        learning_rate, batch_size = 5e-5, 16
    else:
        learning_rate, batch_size = 2e-3, 32
    features = getattr(model, "frozen_features", None)
    data = encoder.encode(
        [s.tokens for s in corpus.sentences],
        [convert(s.tags or [], corpus.scheme, TagScheme.BIOES) for s in corpus.sentences],
    )
    if features is not None:  # frozen character LMs: computed once, as the trainer does
        data.features = features(data)
    batches = bucketed_batches(data.lengths, batch_size, np.random.default_rng(args.seed))
    chosen = batches[: args.train_batches]
    optimizer = build_optimizer(model, "adamw", learning_rate, 0.0, 0.9)
    loss_of = compile_network(model, args.backend).loss if compiled else model.loss
    model.train()

    def step(ids: np.ndarray) -> int:
        batch = data.batch(ids)
        loss = loss_of(batch) / len(ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        return batch.num_tokens

    # A first pass over the batches compiles every graph they need (and warms eager caches);
    # the second pass over the same batches is timed.
    started = time.perf_counter()
    for ids in chosen:
        step(ids)
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    tokens = sum(step(ids) for ids in chosen)
    seconds = time.perf_counter() - started
    mode = "compiled" if compiled else "eager"
    log.info("%s training %s: %.0f tokens/s", kind, mode, tokens / seconds)
    return {"tokens_per_s": tokens / seconds, "tokens": tokens, "warmup_seconds": warmup}


def report(results: dict[str, Any]) -> str:
    lines = [
        "| tagger | dev F1 (eager) | predict eager tok/s | predict compiled tok/s | "
        "predict ONNX Runtime tok/s | ONNX ≠ eager (sent/tok) | compiled ≠ eager (sent/tok) | "
        "train eager tok/s | train compiled tok/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in results.get("predict", {}):
        p = results.get("predict", {}).get(kind)
        t = results.get("train_throughput", {}).get(kind, {})
        if not p:
            continue

        def rate(d: dict[str, Any] | None) -> str:
            return f"{d['tokens_per_s']:,.0f}" if d else "–"

        onnx_diff = "{}/{}".format(*p["onnx"]["differing_sentences_tokens"])
        compiled_diff = "{}/{}".format(*p["compiled"]["differing_sentences_tokens"])
        lines.append(
            f"| {kind} | {100 * p['eager']['f1']:.2f} | {rate(p['eager'])} | "
            f"{rate(p['compiled'])} | {rate(p['onnx'])} | {onnx_diff} | {compiled_diff} | "
            f"{rate(t.get('eager'))} | {rate(t.get('compiled'))} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=9.0, help="transformer training budget")
    parser.add_argument("--bilstm-minutes", type=float, default=2.0)
    parser.add_argument("--train-batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--workdir", default="/tmp/tagsure-graph-bench")
    parser.add_argument("--out", type=Path, default=RESULTS / "graph.json")
    parser.add_argument(
        "--only-train-throughput",
        action="store_true",
        help="keep the training and prediction results already in --out; re-run phase 3",
    )
    parser.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="keep the results already in --out; measure these trained taggers' prediction "
        "(phase 2) and, for NAME pretrained or bilstm+char-lms, training throughput (phase 3)",
    )
    parser.add_argument("--pretrained", help="encoder directory for NAME pretrained (MiniLM)")
    parser.add_argument("--char-lms", nargs="*", default=[], help="LM files, bilstm+char-lms")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "threads": args.threads,
        "backend": args.backend,
        "torch": torch.__version__,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }

    def save() -> None:
        results["table"] = report(results)
        args.out.write_text(json.dumps(portable(results), indent=2) + "\n")

    if args.add:
        previous = json.loads(args.out.read_text())
        results = previous | {"added_command": results["command"], "added": results["started"]}
        for entry in args.add:
            name, model_file = entry.split("=", 1)
            results["predict"][name] = prediction(name, model_file, args) | {"model": model_file}
            save()
            if name in ("pretrained", "bilstm+char-lms"):
                results["train_throughput"][name] = {
                    mode: training_throughput(name, mode == "compiled", args)
                    for mode in ("eager", "compiled")
                }
                save()
        print(report(results))
        return
    if args.only_train_throughput:
        previous = json.loads(args.out.read_text())
        results |= {k: previous[k] for k in ("training", "predict")}
        results["earlier_command"] = previous["command"]
    else:
        results["training"] = {
            "transformer": train_tagger("transformer", args.minutes, args),
            "bilstm": train_tagger("bilstm", args.bilstm_minutes, args),
        }
        save()
        results["predict"] = {}
        for kind in MODELS:
            model_file = results["training"][kind]["model_file"]
            results["predict"][kind] = prediction(kind, model_file, args)
            save()
    results["train_throughput"] = {}
    for kind in MODELS:
        results["train_throughput"][kind] = {
            mode: training_throughput(kind, mode == "compiled", args)
            for mode in ("eager", "compiled")
        }
        save()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    save()
    print(report(results))


if __name__ == "__main__":
    main()
