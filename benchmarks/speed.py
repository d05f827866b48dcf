"""Prediction speed side by side, one run, on the same CoNLL-2003 dev sentences: tagsure's MiniLM
tagger (eager, compiled, ONNX Runtime, bf16, int8), the same weights under a plain
length-sorted `transformers` loop and the `transformers` token-classification pipeline, and, if
given, a tagsure BiLSTM-CRF (eager, ONNX) and spaCy's `nlp.pipe`.

    .venv/bin/python benchmarks/speed.py --minilm M.tagsure [--bilstm-model B.tagsure] \\
        [--spacy-model DIR] [--limit 1500] [--repeats 3] [--threads N]
    .venv/bin/python benchmarks/speed.py --minilm M.tagsure --limit 100 --repeats 1   # smoke

Every row runs in its own process (a clean peak RSS, no warm caches shared between rows). A row
loads its model, tags the sentences once to warm up, then --repeats times; words/s is the median
(tagsure's token count of the sentences for every row). Dev F1 (conlleval, on the sentences
tagged) is given for tagsure rows and the plain loop, whose tags are the argmax of each word's
first subword, as tagsure's softmax head decodes. The pipeline is given the sentences as text
(its tokens joined by spaces) and tuned over --pipeline-batch-sizes; its best row is marked.
F1 means something only for a trained tagger: give one trained on CoNLL-2003 (docs/pretrained.md).
Rows an installed tagsure does not support yet (bf16 or int8 loading, int8 export) say so
instead of failing the run. Results: a table on stdout and benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data"))
PEERS_PYTHON = REPO / "benchmarks" / ".venv-peers" / "bin" / "python"
RESULTS = REPO / "benchmarks" / "results"
PLAIN_BATCH = 64  # sentences per forward of the plain loop, as the ten-line loop


class Unsupported(Exception):
    """This tagsure cannot run the row (an API another branch adds)."""


# -- rows (each runs in a child process) ------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak RSS since it started. Not ``ru_maxrss``: Linux keeps that across
    ``exec``, so a row would report its parent's peak (the parent holds MiniLM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def dev_sentences(limit: int) -> tuple[list[list[str]], list[list[str]]]:
    from tagsure import read_conll

    sentences = list(read_conll(DATA / "conll2003-en" / "dev.txt"))[:limit]
    return [s.tokens for s in sentences], [list(s.tags or []) for s in sentences]


def f1(gold: list[list[str]], predicted: list[list[str]]) -> float:
    from tagsure.evaluation.metrics import MetricsAccumulator

    accumulator = MetricsAccumulator()
    for g, p in zip(gold, predicted, strict=True):
        accumulator.add(g, p)
    return round(100 * accumulator.result().micro.f1, 2)


def load_tagger(path: str, precision: str | None = None) -> Any:
    from tagsure import Tagger
    from tagsure.errors import ConfigError

    try:
        return Tagger.load(path, precision=precision) if precision else Tagger.load(path)
    except (TypeError, ConfigError) as err:
        raise Unsupported(f"precision={precision!r}: {err}") from None


def onnx_path(path: str, work: str, quantize: str | None) -> Path:
    return Path(work) / f"{Path(path).stem}-{quantize or 'fp32'}.onnx"


def export_row(path: str, work: str, quantize: str | None) -> None:
    """Export ahead of the ONNX row, in a process of its own: the row's RSS is ONNX Runtime's."""
    from tagsure.errors import ConfigError
    from tagsure.storage.onnx_export import export_onnx

    out = onnx_path(path, work, quantize)
    try:
        if quantize:
            export_onnx(load_tagger(path), out, quantize=quantize)  # type: ignore[call-arg]
        else:
            export_onnx(load_tagger(path), out)
    except (TypeError, ConfigError) as err:
        raise Unsupported(f"export quantize={quantize!r}: {err}") from None


def onnx_tagger(path: str, work: str, quantize: str | None, threads: int) -> Any:
    from tagsure.serving.onnx_runtime import OnnxTagger

    return OnnxTagger(onnx_path(path, work, quantize), threads=threads)


def tagsure_row(kind: str, path: str, work: str, threads: int) -> Callable[[Any], list]:
    """A function of the sentences giving their tags, for one tagsure row."""
    if kind == "eager":
        tagger = load_tagger(path)
    elif kind in ("bf16", "int8"):
        tagger = load_tagger(path, precision=kind)
    elif kind == "compiled":
        from tagsure.training.compiled import compile_tagger

        tagger = compile_tagger(load_tagger(path))
    elif kind in ("onnx", "onnx-int8"):
        tagger = onnx_tagger(path, work, "int8" if kind == "onnx-int8" else None, threads)
    else:
        raise ValueError(kind)
    return lambda sentences: tagger.tag(sentences)[0]


def plain_loop(hf_dir: str) -> Callable[[Any], list]:
    """The issue's ten lines: a fast tokenizer on word lists, length-sorted batches of 64, one
    forward of AutoModelForTokenClassification each, the argmax at each word's first subword."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tagsure.data.schemes import TagScheme, convert

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForTokenClassification.from_pretrained(hf_dir, attn_implementation="sdpa")
    model.eval()
    labels = model.config.id2label
    card = json.loads((Path(hf_dir) / "tagsure.json").read_text())

    def tag(sentences: list[list[str]]) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in sentences]
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        with torch.inference_mode():
            for start in range(0, len(order), PLAIN_BATCH):
                rows = order[start : start + PLAIN_BATCH]
                batch = tokenizer(
                    [sentences[i] for i in rows],
                    is_split_into_words=True,
                    padding=True,
                    truncation=True,
                    return_tensors="pt",
                )
                best = model(**batch).logits.argmax(-1).tolist()  # (B, S)
                for r, i in enumerate(rows):
                    tags = ["O"] * len(sentences[i])
                    seen = set()
                    for s, w in enumerate(batch.word_ids(r)):
                        if w is not None and w not in seen:
                            seen.add(w)
                            tags[w] = labels[best[r][s]]
                    out[i] = tags
        model_scheme, output_scheme = (TagScheme(card[k]) for k in ("tag_scheme", "output_scheme"))
        return [convert(t, model_scheme, output_scheme) for t in out]

    return tag


def pipeline_row(hf_dir: str, batch_size: int) -> Callable[[Any], list]:
    from transformers import pipeline

    tagger = pipeline(
        "token-classification", model=hf_dir, aggregation_strategy="simple", device="cpu"
    )
    return lambda sentences: tagger([" ".join(s) for s in sentences], batch_size=batch_size)


def run_row(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    sentences, gold = dev_sentences(args.limit)
    words = sum(map(len, sentences))
    started = time.perf_counter()
    name = args.row
    if name.startswith("minilm-") or name.startswith("bilstm-"):
        model = args.minilm if name.startswith("minilm-") else args.bilstm_model
        if args.export_only:
            export_row(model, args.work, "int8" if name.endswith("-int8") else None)
            return {"row": name, "exported": True}
        tag = tagsure_row(name.split("-", 1)[1], model, args.work, threads)
    elif name == "plain-loop":
        tag = plain_loop(args.hf_dir)
    elif name.startswith("pipeline-"):
        tag = pipeline_row(args.hf_dir, int(name.removeprefix("pipeline-bs")))
    else:
        raise ValueError(name)
    load_s = time.perf_counter() - started
    tags = tag(sentences)  # warm-up; also the tags scored
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        tag(sentences)
        times.append(time.perf_counter() - start)
    result: dict[str, Any] = {
        "row": name,
        "words_per_s": round(words / statistics.median(times), 1),
        "repeats_s": [round(t, 3) for t in times],
        "load_s": round(load_s, 2),
        "threads": threads,
        "peak_rss_mb": peak_rss_mb(),
    }
    if not name.startswith("pipeline-"):
        result["dev_f1"] = f1(gold, tags)
    return result


SPACY_ROW = """
import json, statistics, sys, time
import spacy
from spacy.tokens import Doc
model, dev, limit, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sentences, current = [], []
for line in open(dev, encoding="utf-8"):
    fields = line.split()
    if not fields or fields[0] == "-DOCSTART-":
        if current: sentences.append(current); current = []
        continue
    current.append(fields[0])
if current: sentences.append(current)
sentences = sentences[:limit]
nlp = spacy.load(model)
docs = lambda: (Doc(nlp.vocab, words=s) for s in sentences)
list(nlp.pipe(docs()))
times = []
for _ in range(repeats):
    start = time.perf_counter(); list(nlp.pipe(docs())); times.append(time.perf_counter() - start)
words = sum(map(len, sentences))
print(json.dumps({"row": "spacy-pipe", "words_per_s": round(words / statistics.median(times), 1),
    "repeats_s": [round(t, 3) for t in times],
    "peak_rss_mb": round(int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
        .split()[1]) / 1024, 1)}))
"""


# -- the parent: one child per row, then the table ----------------------------------------------


def child(
    args: argparse.Namespace, row: str, work: str, hf_dir: str, extra: list[str] | None = None
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--row", row, "--work", work, "--hf-dir", hf_dir]
    command += extra or []
    for flag, value in (
        ("--minilm", args.minilm),
        ("--bilstm-model", args.bilstm_model),
        ("--limit", args.limit),
        ("--repeats", args.repeats),
        ("--threads", args.threads),
    ):
        if value:
            command += [flag, str(value)]
    return collect(row, command)


def collect(row: str, command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    said = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"row": row, "error": said[:300]}


def export_hf_dir(minilm: str, directory: str) -> None:
    from tagsure import Tagger
    from tagsure.interop.huggingface import export_hf

    tagger = Tagger.load(minilm)
    export_hf(tagger, directory)
    card = {"tag_scheme": tagger.model_scheme.value, "output_scheme": tagger.output_scheme.value}
    (Path(directory) / "tagsure.json").write_text(json.dumps(card))


def table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'row':<18} {'words/s':>9} {'dev F1':>7} {'peak RSS MB':>12} {'load s':>7}  note"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['row']:<18} {'-':>9} {'-':>7} {'-':>12} {'-':>7}  {r['error']}")
            continue
        f1_text = f"{r['dev_f1']:.2f}" if "dev_f1" in r else "-"
        lines.append(
            f"{r['row']:<18} {r['words_per_s']:>9.0f} {f1_text:>7} {r['peak_rss_mb']:>12.0f} "
            f"{r.get('load_s', 0):>7.1f}  {r.get('note', '')}"
        )
    return "\n".join(lines)


def ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    speed = {r["row"]: r["words_per_s"] for r in results if "words_per_s" in r}
    pipelines = [v for k, v in speed.items() if k.startswith("pipeline-")]
    out = {}
    if "minilm-eager" in speed:
        if "plain-loop" in speed:
            out["minilm_eager_vs_plain_loop"] = round(
                speed["minilm-eager"] / speed["plain-loop"], 2
            )
        if pipelines:
            out["minilm_eager_vs_best_pipeline"] = round(speed["minilm-eager"] / max(pipelines), 2)
        if "minilm-onnx" in speed:
            out["minilm_onnx_vs_eager"] = round(speed["minilm-onnx"] / speed["minilm-eager"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minilm", help="a tagsure MiniLM (pretrained-encoder) tagger file")
    parser.add_argument("--bilstm-model", help="a tagsure BiLSTM-CRF tagger file")
    parser.add_argument("--spacy-model", help="a spaCy pipeline directory (peers venv)")
    parser.add_argument("--limit", type=int, default=1500, help="dev sentences")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0: default)")
    parser.add_argument("--pipeline-batch-sizes", default="8,32,64")
    # "compiled" (torch.compile) is a row too; its Inductor build takes minutes on 2 cores
    parser.add_argument("--minilm-rows", default="eager,onnx,bf16,int8,onnx-int8")
    parser.add_argument("--bilstm-rows", default="eager,onnx,bf16,int8,onnx-int8")
    parser.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row, print JSON
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--hf-dir", help=argparse.SUPPRESS)
    parser.add_argument("--export-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        try:
            print(json.dumps(run_row(args)))
        except Unsupported as err:
            print(json.dumps({"row": args.row, "error": f"not supported: {err}"}))
        return
    if not args.minilm and not args.bilstm_model:
        parser.error("give --minilm and/or --bilstm-model")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        hf_dir = str(Path(work) / "hf")
        rows: list[str] = []
        if args.minilm:
            export_hf_dir(args.minilm, hf_dir)
            rows += [f"minilm-{kind}" for kind in args.minilm_rows.split(",") if kind]
            rows += ["plain-loop"]
            rows += [f"pipeline-bs{b}" for b in args.pipeline_batch_sizes.split(",")]
        if args.bilstm_model:
            rows += [f"bilstm-{kind}" for kind in args.bilstm_rows.split(",") if kind]
        for row in rows:
            if "onnx" in row:
                exported = child(args, row, work, hf_dir, ["--export-only"])
                if "error" in exported:
                    results.append(exported)
                    print(table(results[-1:]).splitlines()[-1], flush=True)
                    continue
            results.append(child(args, row, work, hf_dir))
            print(table(results[-1:]).splitlines()[-1], flush=True)
        if args.spacy_model:
            results.append(spacy_row(args))
    pipelines = [r for r in results if r["row"].startswith("pipeline-") and "words_per_s" in r]
    if pipelines:
        max(pipelines, key=lambda r: r["words_per_s"])["note"] = "best pipeline batch size"
    print()
    print(table(results))
    summary = ratios(results)
    for key, value in summary.items():
        print(f"{key}: {value}")
    settings = {"limit": args.limit, "repeats": args.repeats, "threads": args.threads or "default"}
    report = {"settings": settings, "rows": results, "ratios": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


def spacy_row(args: argparse.Namespace) -> dict[str, Any]:
    if not PEERS_PYTHON.exists():
        return {"row": "spacy-pipe", "error": "no peers venv (run benchmarks/peers/setup.sh)"}
    dev = str(DATA / "conll2003-en" / "dev.txt")
    command = [str(PEERS_PYTHON), "-c", SPACY_ROW, args.spacy_model, dev]
    return collect("spacy-pipe", command + [str(args.limit), str(args.repeats)])


if __name__ == "__main__":
    main()
