"""The one helper every tagger type goes through: train, save, reload in a fresh process, compare.

(After AllenNLP's ``ensure_model_can_train_save_and_load``.) The reload happens in a new Python
process so that nothing cached in this one (vocabularies, constraint masks, a language model)
can mask state missing from the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tagsure import Tagger, TrainConfig, train
from tagsure.data.conll import Corpus, Sentence

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "tagsure" / "data" / "bundled"
TINY_MODEL = {"word_dim": 16, "casing_dim": 4, "char_dim": 8, "char_size": 16, "hidden_size": 16}
TINY_LM = {"hidden_size": 32, "embedding_dim": 16, "batch_size": 16, "sequence_length": 50}


def tiny_config(train_path: Path, dev_path: Path, **model: object) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "model": {**TINY_MODEL, **model},
            "training": {"epochs": 2, "batch_size": 16, "seed": 3},
        }
    )


RELOAD_SCRIPT = """
import json, sys
import torch
from safetensors.torch import save_file
from tagsure import Tagger, load_corpus
torch.set_num_threads(1)
model_path, data_path, out_dir = sys.argv[1:4]
tagger = Tagger.load(model_path)
corpus = load_corpus(data_path)
sentences = [s.tokens for s in corpus.sentences]
emissions = tagger.emissions(sentences)
save_file({str(i): e for i, e in enumerate(emissions)}, out_dir + "/emissions.safetensors")
tags, _ = tagger.tag(sentences)
metrics = tagger.evaluate(corpus).to_dict()
json.dump({"tags": tags, "metrics": metrics}, open(out_dir + "/reloaded.json", "w"))
"""


def write_conll(path: Path, sentences: list[Sentence]) -> Path:
    lines = []
    for sentence in sentences:
        lines += [f"{t} {g}" for t, g in zip(sentence.tokens, sentence.tags or [], strict=True)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reload_in_fresh_process(model_path: Path, data_path: Path, out_dir: Path) -> dict:
    """Load the model in a new interpreter; its emissions, tags and metrics on ``data_path``."""
    subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(model_path), str(data_path), str(out_dir)],
        check=True,
    )
    result = json.loads((out_dir / "reloaded.json").read_text())
    result["emissions"] = load_file(str(out_dir / "emissions.safetensors"))
    return result


def ensure_model_can_train_save_and_load(
    config: TrainConfig,
    eval_path: Path,
    tmp_path: Path,
    corpora: tuple[Corpus, Corpus] | None = None,
    before_reload: Callable[[], None] | None = None,
) -> tuple[Tagger, dict]:
    """Train, save, reload in a fresh process; assert bit-identical emissions, same tags and F1.

    ``before_reload`` runs between saving and reloading (e.g. to hide files the model was
    trained from, which loading must not need).
    """
    model_path = tmp_path / "model.tagsure"
    result = train(config, out=model_path, corpora=corpora)
    tagger = result.tagger
    from tagsure import load_corpus

    corpus = load_corpus(eval_path)
    sentences = [s.tokens for s in corpus.sentences]
    before_emissions = tagger.emissions(sentences)
    before_tags, _ = tagger.tag(sentences)
    before_metrics = tagger.evaluate(corpus).to_dict()
    if before_reload is not None:
        before_reload()

    after = reload_in_fresh_process(model_path, eval_path, tmp_path)
    for i, emission in enumerate(before_emissions):
        assert torch.equal(emission, after["emissions"][str(i)]), f"sentence {i}: emissions differ"
    assert after["tags"] == before_tags
    assert after["metrics"] == json.loads(json.dumps(before_metrics))
    # And the same in this process, through the public API.
    assert Tagger.load(model_path).tag(sentences)[0] == before_tags
    return tagger, before_metrics


def train_tiny_lms(folder: Path, text: Path, epochs: int = 1, **settings: int) -> list[Path]:
    """A forward and a backward character LM (TINY_LM) trained on ``text``."""
    from tagsure.training.lm_trainer import LMTrainConfig, train_lm

    paths = []
    for direction in ("forward", "backward"):
        path = folder / f"lm-{direction}.tagsure-lm"
        config = LMTrainConfig(
            text=[str(text)], direction=direction, epochs=epochs, **{**TINY_LM, **settings}
        )
        train_lm(config, path)
        paths.append(path)
    return paths


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in this process, as `tagsure ARGS` would: (exit code, stdout, stderr)."""
    from tagsure.cli.main import main

    sys.argv = ["tagsure", *args]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
