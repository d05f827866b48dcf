"""The README's command-line tour, run top to bottom as written, on small data.

The commands come from the README itself (its ``bash`` blocks between "A five-minute tour" and
"Serve a tagger"), so the tour and the test cannot drift apart. Each must succeed and must not
change a file an earlier step made (resuming a run may finish that run's own files). Training
runs get ``--epochs 1`` appended, for time; the few commands that need what a test machine does
not have are listed in SKIPPED with the test that covers them, and each must still be in the
README.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tagsure import load_corpus
from tests.helpers import BUNDLED, write_conll

README = Path(__file__).resolve().parents[1] / "README.md"

SKIPPED = {
    "tagsure import-hf ./bert-ner": "needs a local Hugging Face model folder: test_huggingface.py",
    "tagsure lm train --direction forward": "a 512-unit character LM: test_char_lm.py",
    "tagsure lm train --direction backward": "a 512-unit character LM: test_char_lm.py",
    "--compile": "torch.compile takes minutes on a CPU: test_compile.py",
    "--engine ray": "needs Ray: test_ray.py",
    "--device cuda": "needs a CUDA GPU: test_devices.py (skips without one)",
    "--nproc 2": "two training processes: test_distributed.py",
}
# Steps allowed to change what an earlier step made: resuming finishes the checkpointed run.
MAY_UPDATE = {"tagsure train --resume run/": ("run/", "checkpointed.")}


def tour_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A five-minute tour") : text.index("## Serve a tagger")]
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", tour, flags=re.S):
        lines += [line for line in block.splitlines() if line and not line.startswith("#")]
    return lines


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)) + ("/" if p.is_dir() else ""): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        )
        for p in folder.rglob("*")
    }


def prepare(step: str, folder: Path) -> None:
    """Inputs the README assumes its reader has, made just before the step that reads them."""
    if "checkpoint.ckpt" in step:  # a DataParallel-style checkpoint of the model just trained
        import torch

        from tagsure.storage.model_file import read_model_file

        _, tensors = read_model_file(folder / "model.tagsure")
        tensors.pop("fingerprint.emissions")
        torch.save(
            {"state_dict": {f"module.{k}": v for k, v in tensors.items()}},
            folder / "checkpoint.ckpt",
        )
    if "docs.jsonl" in step:
        rows = [{"id": i, "body": "Angela Merkel met Emmanuel Macron in Paris ."} for i in range(5)]
        (folder / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_every_skipped_command_is_still_in_the_readme() -> None:
    commands = tour_commands()
    for fragment in SKIPPED:
        assert any(fragment in c for c in commands), f"{fragment!r} is no longer in the README"
    assert len(commands) >= 15


@pytest.mark.slow
def test_the_readme_tour_runs_top_to_bottom(tmp_path: Path) -> None:
    corpus = {
        split: load_corpus(BUNDLED / f"wikiann-en-{split}.txt")
        for split in ("train", "dev", "test")
    }
    write_conll(tmp_path / "train.txt", corpus["train"].sentences[:200])
    write_conll(tmp_path / "dev.txt", corpus["dev"].sentences[:100])
    write_conll(tmp_path / "test.txt", corpus["test"].sentences[:100])
    shim = tmp_path / ".bin" / "tagsure"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m tagsure "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    ran = []
    for step in tour_commands():
        if any(fragment in step for fragment in SKIPPED):
            continue
        prepare(step, tmp_path)
        command = step
        if step.startswith("tagsure train") and "--resume" not in step:
            command += " --epochs 1"
        before = snapshot(tmp_path)
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{step}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"{step}\n{done.stderr[-3000:]}"
        after = snapshot(tmp_path)
        allowed = next((v for k, v in MAY_UPDATE.items() if step.startswith(k)), ())
        changed = [
            name
            for name, digest in before.items()
            if after.get(name) != digest and not name.startswith((".bin", *allowed))
        ]
        assert changed == [], f"{step} changed {changed}, made by an earlier step"
        ran.append(step)
    made = snapshot(tmp_path)
    for name in (
        "model.tagsure",
        "model.metrics.jsonl",
        "model.curve.png",
        "predictions.txt",
        "checkpointed.tagsure",
        "run/",
        "updated.tagsure",
        "model.onnx",
        "tagged.parquet",
    ):
        assert name in made, f"the tour did not make {name}"
    assert len(ran) >= 14
