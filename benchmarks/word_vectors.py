"""CoNLL-2003 dev F1 of the BiLSTM-CRF with and without pretrained word vectors, same budget.

The vectors are trained here, on text that ships with the shared data: WikiText-2 (raw, its
``valid`` and ``test`` files) plus the tokens of the CoNLL-2003 training file (never dev), as
skip-gram with negative sampling. With gensim installed (``pip install gensim``, a benchmark-only
dependency) its Word2Vec trains them; without it, a small torch skip-gram in this file does.
Then two trainings, one after the other, with the same seed, epochs and time limit: one
without vectors, one with ``[data] word_vectors`` (every word of the vectors file joins the
vocabulary, so dev words never seen in training get their vectors).

    .venv/bin/python benchmarks/word_vectors.py                      # ~2 x 20 min + vectors
    .venv/bin/python benchmarks/word_vectors.py --minutes 2 --epochs 1 --train-sentences 2000 \
        --vector-epochs 1 --out runs/wv-smoke.json                    # a smoke test, ~5 min

The corpora are read from ``../shared/data`` beside the clone (or ``TAGSURE_SHARED_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _portable import portable  # beside this script: no machine paths in results

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"


def text_sentences(max_tokens: int | None) -> list[list[str]]:
    """WikiText-2 lines (headings dropped) and CoNLL-2003 training sentences, as token lists."""
    from tagsure import load_corpus

    sentences: list[list[str]] = []
    for name in ("valid.txt", "test.txt"):
        for line in (DATA / "wikitext-2-raw" / name).read_text(encoding="utf-8").splitlines():
            tokens = line.split()
            if tokens and not line.strip().startswith("="):
                sentences.append(tokens)
    sentences += [s.tokens for s in load_corpus(DATA / "conll2003-en" / "train.txt").sentences]
    if max_tokens is not None:
        kept, total = [], 0
        for tokens in sentences:
            kept.append(tokens)
            total += len(tokens)
            if total >= max_tokens:
                break
        sentences = kept
    return sentences


def normalised(sentences: list[list[str]]) -> list[list[str]]:
    from tagsure.data.features import normalise_word

    return [[normalise_word(t) for t in s] for s in sentences]


def train_gensim(sentences: list[list[str]], args: argparse.Namespace) -> dict[str, np.ndarray]:
    from gensim.models import Word2Vec

    model = Word2Vec(
        sentences,
        vector_size=args.dim,
        window=args.window,
        min_count=args.min_count,
        sg=1,
        negative=args.negative,
        epochs=args.vector_epochs,
        seed=args.seed,
        workers=args.threads,
    )
    return {word: model.wv[word] for word in model.wv.index_to_key}  # most frequent first


def train_torch_skipgram(
    sentences: list[list[str]], args: argparse.Namespace
) -> dict[str, np.ndarray]:
    """Skip-gram with negative sampling (Mikolov et al., 2013): frequent words subsampled,
    negatives drawn from counts ** 0.75, a random window per centre word."""
    import torch

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    counts = Counter(t for s in sentences for t in s)
    words = [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    words = [w for w in words if counts[w] >= args.min_count]
    index = {w: i for i, w in enumerate(words)}
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    noise = torch.tensor(freq**0.75 / (freq**0.75).sum())
    keep_p = np.minimum(1.0, np.sqrt(1e-4 / (freq / freq.sum())) + 1e-4 / (freq / freq.sum()))
    centre = torch.nn.Embedding(len(words), args.dim, sparse=True)
    context = torch.nn.Embedding(len(words), args.dim, sparse=True)
    torch.nn.init.uniform_(centre.weight, -0.5 / args.dim, 0.5 / args.dim)
    torch.nn.init.zeros_(context.weight)
    optimizer = torch.optim.SparseAdam([*centre.parameters(), *context.parameters()], lr=0.005)
    flat = np.array([index[t] for s in sentences for t in s if t in index], dtype=np.int64)
    sentence_of = np.repeat(
        np.arange(len(sentences)), [sum(t in index for t in s) for s in sentences]
    )
    for epoch in range(args.vector_epochs):
        started = time.perf_counter()
        kept = rng.random(len(flat)) < keep_p[flat]
        words_kept, sentence_kept = flat[kept], sentence_of[kept]
        reach = rng.integers(1, args.window + 1, len(words_kept))  # each centre's window
        centres, contexts = [], []
        for d in range(1, args.window + 1):  # every (centre, context) pair at distance d
            same = sentence_kept[:-d] == sentence_kept[d:]
            left = same & (reach[:-d] >= d)  # centre i, context i + d
            right = same & (reach[d:] >= d)  # centre i + d, context i
            centres += [words_kept[:-d][left], words_kept[d:][right]]
            contexts += [words_kept[d:][left], words_kept[:-d][right]]
        pairs = np.stack([np.concatenate(centres), np.concatenate(contexts)], axis=1)
        all_pairs = torch.from_numpy(pairs[rng.permutation(len(pairs))])
        total = 0.0
        for start in range(0, len(all_pairs), 4096):
            batch = all_pairs[start : start + 4096]
            u = centre(batch[:, 0])  # (B, D)
            v = context(batch[:, 1])  # (B, D)
            negatives = context(torch.multinomial(noise, len(batch) * args.negative, True))
            negatives = negatives.view(len(batch), args.negative, args.dim)  # (B, K, D)
            positive = torch.nn.functional.logsigmoid((u * v).sum(-1))  # (B,)
            negative = torch.nn.functional.logsigmoid(-(negatives @ u.unsqueeze(2)).squeeze(2))
            loss = -(positive + negative.sum(-1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        print(
            f"   skip-gram epoch {epoch + 1}: {len(pairs):,} pairs, loss "
            f"{total / max(len(pairs), 1):.3f}, {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    matrix = centre.weight.detach().numpy()
    return {w: matrix[i] for i, w in enumerate(words)}


def write_vectors(vectors: dict[str, np.ndarray], path: Path) -> None:
    """word2vec text format: ``count dim``, then a word and its numbers per line."""
    dim = len(next(iter(vectors.values())))
    with path.open("w", encoding="utf-8") as out:
        out.write(f"{len(vectors)} {dim}\n")
        for word, row in vectors.items():
            out.write(word + " " + " ".join(f"{x:.5f}" for x in row) + "\n")


def nearest(vectors: dict[str, np.ndarray], words: list[str], k: int = 5) -> dict[str, list]:
    names = list(vectors)
    matrix = np.stack([vectors[w] for w in names])
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)
    out = {}
    for word in words:
        if word in vectors:
            scores = matrix @ matrix[names.index(word)]
            out[word] = [names[i] for i in np.argsort(-scores)[1 : k + 1]]
    return out


def train_tagger(name: str, args: argparse.Namespace, train_path: Path, vectors: Path | None):
    import torch

    from tagsure import TrainConfig, load_corpus, train

    torch.set_num_threads(args.threads)
    data = {"train": str(train_path), "dev": str(DATA / "conll2003-en" / "dev.txt")}
    if vectors is not None:
        data["word_vectors"] = str(vectors)
        if args.max_vectors:
            data["max_vectors"] = args.max_vectors
    config = TrainConfig.from_dict(
        {
            "data": data,
            "model": {"word_dim": args.dim},
            "training": {"epochs": args.epochs, "max_minutes": args.minutes, "seed": args.seed},
        }
    )
    print(f"== {name}", flush=True)
    result = train(config, out=Path(args.workdir) / f"{name}.tagsure")
    tagger = result.tagger
    dev = load_corpus(DATA / "conll2003-en" / "dev.txt")
    metrics = tagger.evaluate(dev)
    best = next(r for r in result.history if r.epoch == result.best_epoch)
    return {
        "best_dev_f1": best.dev["f1"],
        "dev_f1_of_saved_model": metrics.micro.f1,
        "per_type_f1": {k: v.f1 for k, v in metrics.per_type.items()},
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "train_minutes": result.history[-1].minutes,
        "train_tokens_per_s": result.train_tokens / max(result.train_seconds, 1e-9),
        "vocabulary": len(tagger.vectorizer.words),
        "curve": [
            {"epoch": r.epoch, "minutes": r.minutes, "dev_f1": r.dev["f1"]} for r in result.history
        ],
    }


def dev_coverage(train_path: Path, vectors: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of dev tokens unseen in training, and of those, the share the vectors cover."""
    from tagsure import load_corpus
    from tagsure.data.features import normalise_word

    seen = {normalise_word(t) for s in load_corpus(train_path).sentences for t in s.tokens}
    dev = [
        normalise_word(t)
        for s in load_corpus(DATA / "conll2003-en" / "dev.txt").sentences
        for t in s.tokens
    ]
    unseen = [t for t in dev if t not in seen]
    return {
        "dev_tokens": len(dev),
        "dev_tokens_unseen_in_training": len(unseen) / len(dev),
        "of_those_with_a_vector": sum(t in vectors for t in unseen) / max(len(unseen), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget, each run")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=100, help="vector size = word_dim")
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--vector-epochs", type=int, default=5)
    parser.add_argument("--max-text-tokens", type=int, help="cap the vectors' text (smoke tests)")
    parser.add_argument("--max-vectors", type=int, help="[data] max_vectors of the second run")
    parser.add_argument("--train-sentences", type=int, help="first N training sentences only")
    parser.add_argument("--trainer", choices=["auto", "gensim", "torch"], default="auto")
    parser.add_argument("--workdir", default="/tmp/tagsure-bench/word-vectors")
    parser.add_argument("--out", type=Path, default=RESULTS / "word_vectors.json")
    args = parser.parse_args()
    if not (DATA / "conll2003-en" / "train.txt").exists():
        sys.exit(f"CoNLL-2003 not found under {DATA}; set TAGSURE_SHARED_DATA")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    train_path = DATA / "conll2003-en" / "train.txt"
    if args.train_sentences:
        from tagsure import load_corpus

        sentences = load_corpus(train_path).sentences[: args.train_sentences]
        train_path = work / "train.txt"
        train_path.write_text(
            "\n\n".join(
                "\n".join(f"{t} {g}" for t, g in zip(s.tokens, s.tags or [], strict=True))
                for s in sentences
            )
            + "\n",
            encoding="utf-8",
        )

    trainer = args.trainer
    if trainer == "auto":
        try:
            import gensim  # noqa: F401

            trainer = "gensim"
        except ImportError:
            trainer = "torch"
    text = normalised(text_sentences(args.max_text_tokens))
    print(f"== vectors: {trainer} skip-gram on {sum(map(len, text)):,} tokens", flush=True)
    started = time.perf_counter()
    vectors = (train_gensim if trainer == "gensim" else train_torch_skipgram)(text, args)
    vector_seconds = time.perf_counter() - started
    vectors_path = work / "vectors.txt"
    write_vectors(vectors, vectors_path)
    neighbours = nearest(vectors, ["germany", "london", "monday", "football", "president"])
    for word, near in neighbours.items():
        print(f"   {word}: {', '.join(near)}")

    runs = {
        "no vectors": train_tagger("no-vectors", args, train_path, None),
        "word vectors": train_tagger("word-vectors", args, train_path, vectors_path),
    }
    lines = []
    for name, run in runs.items():
        lines.append(
            f"{name:>13}: best dev F1 {100 * run['best_dev_f1']:.2f} (epoch {run['best_epoch']} "
            f"of {run['epochs']}, {run['train_minutes']:.1f} min, vocabulary "
            f"{run['vocabulary']:,}, {run['train_tokens_per_s']:,.0f} tokens/s)"
        )
    delta = 100 * (runs["word vectors"]["best_dev_f1"] - runs["no vectors"]["best_dev_f1"])
    lines.append(f"word vectors - no vectors: {delta:+.2f} F1 points")
    table = "\n".join(lines)
    print(table)
    result = {
        "command": "python benchmarks/word_vectors.py " + " ".join(sys.argv[1:]),
        "vectors": {
            "trainer": trainer,
            "text": "../shared/data: wikitext-2-raw valid+test, conll2003-en/train.txt tokens",
            "text_tokens": sum(map(len, text)),
            "words": len(vectors),
            "dim": args.dim,
            "window": args.window,
            "negative": args.negative,
            "min_count": args.min_count,
            "epochs": args.vector_epochs,
            "seconds": vector_seconds,
            "nearest": neighbours,
        },
        "coverage": dev_coverage(train_path, vectors),
        "settings": {
            "minutes": args.minutes,
            "epochs": args.epochs,
            "seed": args.seed,
            "threads": args.threads,
            "train_sentences": args.train_sentences,
            "max_vectors": args.max_vectors,
        },
        "runs": runs,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(portable(result), indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
