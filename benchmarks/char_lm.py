"""CoNLL-2003 English: the BiLSTM-CRF with and without contextual string embeddings.

Takes a forward and a backward character LM (trained with ``tagsure lm train``; the commands
are in docs/benchmarks.md), trains the foundation tagger (words + characters) and the same
tagger with both LMs stacked in, for the same number of epochs, then prints a table and writes
JSON. Each variant runs in its own process; with ``--parallel`` they run side by side with
one thread each (same conditions for all), otherwise one after the other with ``--threads``.
``--variants`` picks which (the pooled LM embeddings are a third); ``--set KEY=VALUE`` overrides
a ``[training]`` setting for every variant alike.

    .venv/bin/python benchmarks/char_lm.py --lm-forward lm-forward.tagsure-lm \\
        --lm-backward lm-backward.tagsure-lm --epochs 15 --parallel
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from _portable import portable  # beside this script: no machine paths in results
from conll03 import RESULTS, run_tagsure

# variant name -> [model] settings beyond the language models (None: no LMs at all)
VARIANTS: dict[str, dict | None] = {
    "words+chars": None,
    "words+chars+char-LMs": {},
    "words+chars+pooled-char-LMs": {"char_lm_pooling": "mean"},
}
DEFAULT_VARIANTS = ["words+chars", "words+chars+char-LMs"]


def parse_setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, booleans), else a string."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def run_variant(args: argparse.Namespace) -> dict:
    extra = VARIANTS[args.part]
    args.name = args.part.replace("+", "_")
    args.model = (
        {}
        if extra is None
        else {"char_language_models": [args.lm_forward, args.lm_backward], **extra}
    )
    args.training = dict(args.set)
    args.max_epochs = args.epochs
    result = run_tagsure(args)
    # Median epoch: robust to an epoch that shared the machine with another job.
    result["median_epoch_tokens_per_s"] = statistics.median(result["epoch_tokens_per_s"])
    return result


def describe_lm(path: str) -> dict:
    from tagsure.storage.lm_file import load_lm

    lm = load_lm(path)
    return {
        "file": Path(path).name,
        "direction": lm.config.direction,
        "hidden_size": lm.config.hidden_size,
        "layers": lm.config.layers,
        "parameters": sum(p.numel() for p in lm.parameters()),
        "dictionary_chars": len(lm.config.chars),
        **lm.config.training,
    }


def report(results: dict[str, dict], lms: list[dict]) -> str:
    lines = ["| | " + " | ".join(results) + " |", "|---" * (len(results) + 1) + "|"]
    fields = [
        ("best dev F1", lambda r: f"{100 * r['best_dev_f1']:.2f}"),
        ("best epoch / epochs", lambda r: f"{r['best_epoch']} / {r['epochs']}"),
        ("training tokens/s (median epoch)", lambda r: f"{r['median_epoch_tokens_per_s']:,.0f}"),
        ("training minutes", lambda r: f"{r['train_minutes']:.1f}"),
        ("prediction tokens/s", lambda r: f"{r['predict_tokens_per_s']:,.0f}"),
        ("dev F1 after reload", lambda r: f"{100 * r['dev_f1_after_reload']:.2f}"),
        ("tags identical after reload", lambda r: str(r["dev_tags_identical_after_reload"])),
        ("model file MB", lambda r: f"{r['model_size_mb']:.1f}"),
    ]
    for label, get in fields:
        lines.append(f"| {label} | " + " | ".join(get(r) for r in results.values()) + " |")
    lines += ["", "| LM | hidden | parameters | epochs | held-out bpc | chars seen | hours |"]
    lines.append("|---|---|---|---|---|---|---|")
    for lm in lms:
        lines.append(
            f"| {lm['direction']} | {lm['hidden_size']} | {lm['parameters']:,} | "
            f"{lm.get('epochs', '?')} | {lm.get('holdout_bpc', float('nan')):.3f} | "
            f"{lm.get('train_chars_seen', 0):,} | {lm.get('train_hours', 0):.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lm-forward", required=True)
    parser.add_argument("--lm-backward", required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--minutes", type=float, help="training time limit for each variant")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", action="store_true", help="variants at once, 1 thread each")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=DEFAULT_VARIANTS)
    parser.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [training] setting for every variant, e.g. warmup_fraction=0.02",
    )
    parser.add_argument("--workdir", default="/tmp/tagsure-char-lm-bench")
    parser.add_argument("--out", type=Path, default=RESULTS / "char_lm.json")
    parser.add_argument("--part", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        result = run_variant(args)
        (Path(args.workdir) / f"{args.name}.json").write_text(json.dumps(result, indent=2))
        return
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    threads = 1 if args.parallel else args.threads
    common = ["--lm-forward", args.lm_forward, "--lm-backward", args.lm_backward]
    common += ["--epochs", str(args.epochs), "--seed", str(args.seed), "--threads", str(threads)]
    if args.minutes is not None:
        common += ["--minutes", str(args.minutes)]
    common += ["--workdir", args.workdir]
    common += [f"--set={key}={json.dumps(value)}" for key, value in args.set]
    processes = []
    for variant in args.variants:
        command = [sys.executable, __file__, "--part", variant, *common]
        process = subprocess.Popen(command)
        if not args.parallel:
            process.wait()
        processes.append(process)
    if any(p.wait() != 0 for p in processes):
        sys.exit("a variant failed; see its output above")
    results = {
        v: json.loads((Path(args.workdir) / f"{v.replace('+', '_')}.json").read_text())
        for v in args.variants
    }
    lms = [describe_lm(args.lm_forward), describe_lm(args.lm_backward)]
    table = report(results, lms)
    print(table)
    command = " ".join(["python", "benchmarks/char_lm.py", *sys.argv[1:]])
    args.out.write_text(
        json.dumps(
            portable({"command": command, "results": results, "lms": lms, "table": table}), indent=2
        )
    )


if __name__ == "__main__":
    main()
