"""--device and --precision beyond train/evaluate/verify: predict, serve (its batcher runs the
model where it was placed) and lm train; a GPU that isn't there is one line, not a traceback;
fp16's loss scale survives a resume."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file

from tagsure import Tagger, load_corpus
from tagsure.serving.loading import load_model
from tagsure.training.resume_state import load_resume_state
from tagsure.training.trainer import resume, train
from tests.helpers import BUNDLED, run_cli, tiny_config, write_conll
from tests.serving import serving

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("placement")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    paths = {
        "train": write_conll(folder / "train.txt", corpus.sentences[:160]),
        "dev": write_conll(folder / "dev.txt", corpus.sentences[160:200]),
        "text": folder / "text.txt",
        "model": folder / "model.tagsure",
    }
    paths["text"].write_text("\n".join(" ".join(s.tokens) for s in corpus.sentences[:150]))
    config = tiny_config(paths["train"], paths["dev"])
    config.training.epochs = 1
    train(config, out=paths["model"])
    return paths


def lm_args(files: dict[str, Path], out: Path) -> list[str]:
    return ["lm", "train", "--out", str(out), "--text", str(files["text"]), "--hidden-size", "16"]


@no_gpu
@pytest.mark.parametrize("command", ["predict", "serve", "lm"])
def test_a_missing_gpu_is_one_line(
    command: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {
        "predict": ["predict", str(files["model"]), str(files["dev"])],
        "serve": ["serve", str(files["model"]), "--port", "1"],
        "lm": [*lm_args(files, tmp_path / "lm.tagsure-lm"), "--epochs", "1"],
    }[command]
    code, out, err = run_cli([*args, "--device", "cuda"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("tagsure: error: device 'cuda': this PyTorch")
    assert err.rstrip().endswith("sees no CUDA GPU; use --device cpu (or auto)")
    assert "Traceback" not in err and err.count("\n") == 1


def test_predict_refuses_an_unknown_precision_in_one_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["predict", str(files["model"]), str(files["dev"]), "--precision", "int4"]
    code, _, err = run_cli(args, capsys)
    assert code == 1
    assert err == "tagsure: error: precision 'int4': use one of fp32, bf16, fp16, int8\n"
    text = files["dev"].parent / "text.txt"  # the streaming path checks before any worker starts
    code, _, err = run_cli([*args[:2], str(text), "--precision", "int4", "--workers", "2"], capsys)
    assert code == 1 and err.startswith("tagsure: error: precision 'int4'")


def test_predict_on_cpu_and_auto_gives_the_cpu_answer(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["predict", str(files["model"]), str(files["dev"])]
    answers = {}
    for device in ("cpu", "auto"):
        code, answers[device], err = run_cli([*args, "--device", device], capsys)
        assert code == 0, err
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert answers["auto"] == answers["cpu"]  # auto fell back to the CPU


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_server_runs_its_model_where_it_was_placed(
    precision: str, files: dict[str, Path]
) -> None:
    model = load_model(files["model"], threads=1, device="cpu", precision=precision)
    assert model.tagger.precision == precision
    expected = Tagger.load(files["model"], precision=precision).predict(["Peter lives in Berlin ."])
    with serving(model) as url:
        info = httpx.get(url + "/info").json()
        answer = httpx.post(url + "/predict", json={"inputs": ["Peter lives in Berlin ."]}).json()
    assert info["model"]["device"] == "cpu" and info["model"]["precision"] == precision
    assert [e["word"] for e in answer[0]] == [e.text for e in expected[0].entities]


def test_lm_train_on_cpu_is_the_cpu_run(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outs = [tmp_path / "default.tagsure-lm", tmp_path / "cpu.tagsure-lm"]
    settings = ["--epochs", "1", "--batch-size", "8", "--sequence-length", "40"]
    assert run_cli([*lm_args(files, outs[0]), *settings], capsys)[0] == 0
    assert run_cli([*lm_args(files, outs[1]), *settings, "--device", "cpu"], capsys)[0] == 0
    first, second = load_file(str(outs[0])), load_file(str(outs[1]))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_fp16_resume_restores_the_loss_scale(files: dict[str, Path], tmp_path: Path) -> None:
    """Two fp16 epochs in one go, and one epoch then a resume to two, end in the same loss
    scaler state (its growth tracker counts every step) and the same weights."""
    config = tiny_config(files["train"], files["dev"])
    config.training.epochs = 2
    straight, split = tmp_path / "straight", tmp_path / "split"
    try:
        train(config, checkpoint_dir=straight, precision="fp16", verbose=False)
    except RuntimeError as err:  # a CPU without fp16 kernels for some op
        pytest.skip(f"fp16 autocast does not run on this CPU: {err}")
    config.training.epochs = 1
    train(config, checkpoint_dir=split, precision="fp16", verbose=False)
    after_one = load_resume_state(split).document["grad_scaler"]
    assert after_one["_growth_tracker"] > 0 and after_one["scale"] > 0
    resume(split, precision="fp16", epochs=2, verbose=False)
    one_go, resumed = load_resume_state(straight), load_resume_state(split)
    assert resumed.document["grad_scaler"] == one_go.document["grad_scaler"]
    assert one_go.document["grad_scaler"]["_growth_tracker"] > after_one["_growth_tracker"]
    assert all(torch.equal(one_go.model[k], resumed.model[k]) for k in one_go.model)


@needs_cuda
def test_predict_on_the_gpu_tags_as_the_cpu_does(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["predict", str(files["model"]), str(files["dev"])]
    _, cpu, _ = run_cli(args, capsys)
    code, gpu, err = run_cli([*args, "--device", "cuda", "--precision", "bf16"], capsys)
    assert code == 0, err
    same = [a == b for a, b in zip(cpu.splitlines(), gpu.splitlines(), strict=True)]
    assert sum(same) / len(same) > 0.95


@needs_cuda
def test_the_server_runs_its_model_on_the_gpu(files: dict[str, Path]) -> None:
    model = load_model(files["model"], threads=1, device="cuda", precision="bf16")
    with serving(model) as url:
        info = httpx.get(url + "/info").json()
        answer = httpx.post(url + "/predict", json={"inputs": ["Peter lives in Berlin ."]})
    assert info["model"]["device"].startswith("cuda") and info["model"]["precision"] == "bf16"
    assert answer.status_code == 200
