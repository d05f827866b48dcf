"""Start-up: whole-process wall time of short `tagsure` commands, from process start to exit.

Each row is one command line run in a fresh interpreter, once to warm the file cache and then
--runs times (5 by default); the table shows the median, min and max. Rows:

    help           tagsure --help
    version        tagsure --version
    usage-error    tagsure predict            (missing argument: exit 2, one line on stderr)
    predict-torch  tagsure predict MODEL.tagsure ONE_SENTENCE.txt
    predict-onnx   tagsure predict MODEL.onnx ONE_SENTENCE.txt
    import-torch   python -c "import torch"   (the floor of any command that needs torch)

and, for each, whether torch was imported (checked in a separate run of the same command, so
the timed runs carry no probe). Targets (issue 18): help <= 0.3 s, predict-torch <= 1.0 s,
predict-onnx <= 0.5 s.

    .venv/bin/python benchmarks/startup.py                      # trains a small model first
    .venv/bin/python benchmarks/startup.py --model M.tagsure    # and exports M.onnx beside it

Without --model, a BiLSTM-CRF with the default [model] settings is trained for one epoch on
the bundled WikiANN sample (about a minute) into benchmarks/results/.startup-model/. Results:
a table on stdout and benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BUNDLED = REPO / "src" / "tagsure" / "data" / "bundled"
SENTENCE = "Angela Merkel met Emmanuel Macron in Paris to discuss the European Union.\n"
TARGETS = {"help": 0.3, "predict-torch": 1.0, "predict-onnx": 0.5}
# Run a command line as `python -m tagsure` would, then say whether torch got imported.
PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('TORCH' if 'torch' in sys.modules else 'NO-TORCH',"
    " file=sys.stderr))\n"
    "sys.argv = ['tagsure', *sys.argv[1:]]\n"
    "runpy.run_module('tagsure', run_name='__main__')\n"
)


def tagsure(*args: str) -> list[str]:
    return [sys.executable, "-m", "tagsure", *args]


def build_model(folder: Path, epochs: int) -> Path:
    """A default-size BiLSTM-CRF trained briefly on the bundled sample (start-up only needs a
    file of the usual size, not a good tagger)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model.tagsure"
    if model.exists():
        return model
    config = folder / "config.toml"
    config.write_text(
        "[data]\n"
        f'train = "{(BUNDLED / "wikiann-en-train.txt").as_posix()}"\n'
        f'dev = "{(BUNDLED / "wikiann-en-dev.txt").as_posix()}"\n'
        f"[training]\nepochs = {epochs}\nseed = 1\n",
        encoding="utf-8",
    )
    subprocess.run(
        tagsure("train", "--config", str(config), "--out", str(model)),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return model


def export_onnx(model: Path) -> Path:
    onnx = model.with_suffix(".onnx")
    if not onnx.exists():
        subprocess.run(
            tagsure("export", str(model), str(onnx), "--format", "onnx"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return onnx


def wall_time(command: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, done.returncode


def imports_torch(command: list[str]) -> bool | None:
    """Whether ``tagsure ARGS`` imports torch (None for a row that is not a tagsure command)."""
    if command[1:3] != ["-m", "tagsure"]:
        return None
    probe = [sys.executable, "-c", PROBE, *command[3:]]
    done = subprocess.run(probe, capture_output=True, text=True)
    return "NO-TORCH" not in done.stderr.splitlines()[-1:]


def measure(rows: dict[str, list[str]], runs: int) -> list[dict[str, object]]:
    results = []
    for name, command in rows.items():
        wall_time(command)  # warm-up: file cache, .pyc files
        times, codes = zip(*(wall_time(command) for _ in range(runs)), strict=True)
        results.append(
            {
                "row": name,
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "exit_code": codes[0],
                "imports_torch": imports_torch(command),
                "target_s": TARGETS.get(name),
            }
        )
        print(f"  {name}: {results[-1]['median_s']:.3f} s", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="A .tagsure file (default: train one).")
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per row (median).")
    parser.add_argument("--epochs", type=int, default=1, help="Epochs for the built model.")
    parser.add_argument("--out", type=Path, default=RESULTS / "startup.json")
    args = parser.parse_args()

    model = args.model or build_model(RESULTS / ".startup-model", args.epochs)
    onnx = export_onnx(model)
    sentence = model.parent / "one-sentence.txt"
    sentence.write_text(SENTENCE, encoding="utf-8")
    rows = {
        "help": tagsure("--help"),
        "version": tagsure("--version"),
        "usage-error": tagsure("predict"),
        "predict-torch": tagsure("predict", str(model), str(sentence)),
        "predict-onnx": tagsure("predict", str(onnx), str(sentence)),
        "import-torch": [sys.executable, "-c", "import torch"],
    }
    results = measure(rows, args.runs)

    print(f"\n{'row':<14} {'median s':>9} {'min s':>7} {'max s':>7} {'target':>7}  torch")
    for r in results:
        target = "" if r["target_s"] is None else f"{r['target_s']:.1f}"
        torch_column = {None: "-", True: "imported", False: "not imported"}[r["imports_torch"]]
        print(
            f"{r['row']:<14} {r['median_s']:>9.3f} {r['min_s']:>7.3f} {r['max_s']:>7.3f}"
            f" {target:>7}  {torch_column}"
        )
    record = {
        "benchmark": "startup",
        "runs": args.runs,
        "model": "given" if args.model else f"BiLSTM-CRF, default [model], {args.epochs} epoch(s)",
        "model_bytes": model.stat().st_size,
        "onnx_bytes": onnx.stat().st_size,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "rows": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
