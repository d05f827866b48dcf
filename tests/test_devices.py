"""Devices and precision: names resolved or refused with what this machine has; batches and
autocast untouched on the CPU in fp32; bf16 autocast training and inference on the CPU; on a
GPU (where there is one) a model trained there loads on the CPU within the stated tolerance."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from tagsure import Tagger, load_corpus
from tagsure.data.devices import autocast, autocast_cache, grad_scaler, move, resolve_device
from tagsure.errors import ConfigError
from tagsure.storage import fingerprint
from tagsure.training.trainer import train
from tests.helpers import BUNDLED, run_cli, tiny_config, write_conll

no_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("devices")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    return (
        write_conll(folder / "train.txt", corpus.sentences[:160]),
        write_conll(folder / "dev.txt", corpus.sentences[160:200]),
    )


def test_device_names_resolve_or_say_what_this_machine_has() -> None:
    assert resolve_device("cpu") == resolve_device(None) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    assert resolve_device("auto").type == (expected or resolve_device("auto").type)
    with pytest.raises(ConfigError, match="'tpu'.*cpu, cuda, cuda:N, mps or auto"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="'nonsense': not a device name"):
        resolve_device("nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda:1'.*sees no CUDA GPU; use --device cpu"):
            resolve_device("cuda:1")
    else:
        with pytest.raises(ConfigError, match="there are"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_cpu_fp32_adds_nothing(data: tuple[Path, Path]) -> None:
    config = tiny_config(*data)
    config.training.epochs = 1
    tagger = train(config).tagger
    batch = tagger.vectorizer.encode([["Peter", "lives", "in", "Berlin"]]).batch([0])
    assert move(batch, torch.device("cpu")) is batch
    assert isinstance(autocast(torch.device("cpu"), "fp32"), contextlib.nullcontext)
    assert grad_scaler(torch.device("cpu"), "bf16") is None
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        autocast(torch.device("cpu"), "fp8")


def test_bf16_autocast_trains_and_tags_on_the_cpu(data: tuple[Path, Path], tmp_path: Path) -> None:
    config = tiny_config(*data)
    config.training.epochs = 1
    result = train(config, out=tmp_path / "bf16.tagsure", precision="bf16")
    assert torch.isfinite(torch.tensor(result.history[0].train_loss))
    # The file's fingerprint is of fp32 inference: it loads and verifies bit for bit here.
    tagger = Tagger.load(tmp_path / "bf16.tagsure")
    sentences = [s.tokens for s in load_corpus(data[1]).sentences]
    exact = tagger.emissions(sentences)
    rough = tagger.to("cpu", precision="bf16").emissions(sentences)
    assert all(r.dtype == torch.float32 for r in rough)
    worst = max(float((e - r).abs().max()) for e, r in zip(exact, rough, strict=True))
    assert 0 < worst < 0.5  # bf16 keeps ~3 significant digits of the scores
    assert tagger.precision == "bf16" and len(tagger.tag(sentences)[0]) == len(sentences)


def test_cli_refuses_a_missing_gpu_in_one_line(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, _, err = run_cli(["train", "--train", str(data[0]), "--device", "cuda"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"tagsure: error: device 'cuda': this PyTorch ({torch.__version__}) sees no CUDA GPU; "
        "use --device cpu (or auto)"
    ]


@no_cuda
def test_trained_on_the_gpu_loads_on_the_cpu_within_the_tolerance(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    config = tiny_config(*data)
    result = train(config, out=tmp_path / "gpu.tagsure", device="cuda", precision="bf16")
    sentences = [s.tokens for s in load_corpus(data[1]).sentences]
    on_gpu = result.tagger.tag(sentences)[0]
    assert result.tagger.device.type == "cuda"
    cpu = Tagger.load(tmp_path / "gpu.tagsure")  # saved on cuda: checked within tolerance
    check = fingerprint.verify(cpu, cpu.metadata["fingerprint"])
    assert not check.same_platform and check.tolerance == fingerprint.CROSS_PLATFORM_TOLERANCE
    assert check.ok()
    assert cpu.tag(sentences)[0] == on_gpu
    again = Tagger.load(tmp_path / "gpu.tagsure", device="cuda")
    assert again.tag(sentences)[0] == on_gpu


@pytest.mark.parametrize("native", [True, False])
def test_cpu_lstm_runs_in_bf16_only_where_the_cpu_has_bf16_instructions(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagsure.layers import bilstm

    monkeypatch.setattr(bilstm, "native_bf16_cpu", lambda: native)
    lstm, x = torch.nn.LSTM(4, 3, batch_first=True), torch.randn(2, 5, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = bilstm.run_lstm(lstm, x)
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    with torch.autocast("cpu", dtype=torch.float16):
        assert bilstm.run_lstm(lstm, x)[0].dtype == torch.float32
    assert torch.equal(bilstm.run_lstm(lstm, x)[0], lstm(x)[0])  # no autocast: the plain call


def test_bf16_micro_batches_keep_their_gradients_when_casts_are_cached() -> None:
    """One step's micro-batches inside ``autocast_cache``: the weights' bf16 copies are made
    once and reused, and the gradients are those of separate autocast passes, bit for bit."""
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    parts = [torch.randn(5, 6), torch.randn(2, 6), torch.randn(7, 6)]
    cpu = torch.device("cpu")
    grads = []
    for cached in (False, True):
        layer.zero_grad(set_to_none=True)
        with autocast_cache(cpu, "bf16") if cached else contextlib.nullcontext():
            for x in parts:
                with autocast(cpu, "bf16"):
                    loss = layer(x).float().pow(2).sum()
                loss.backward()
        grads.append([p.grad.clone() for p in layer.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    assert isinstance(autocast_cache(cpu, "fp32"), contextlib.nullcontext)
