"""Lower precision at inference: int8 ONNX exports fingerprinted as quantised and verified bit
for bit; torch int8 (dynamic quantisation) and bf16 autocast for every tagger type, tagging as
fp32 does on nearly every token; the CLI's --quantize and --precision."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch

from tagsure import Tagger, TrainConfig, load_corpus, train
from tagsure.errors import ConfigError
from tagsure.serving.onnx_runtime import OnnxTagger
from tagsure.storage import fingerprint, onnx_export
from tagsure.storage.onnx_export import export_onnx
from tagsure.storage.onnx_file import METADATA_KEY
from tests.helpers import BUNDLED, run_cli, tiny_config, write_conll
from tests.hf_models import make_encoder_dir

TAGGERS = {
    "bilstm": {"architecture": "bilstm", "head": "crf"},
    "transformer": {"architecture": "transformer", "head": "crf", "heads": 2, "ff_size": 32},
    "pretrained": {"architecture": "pretrained", "head": "softmax"},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small trained model file of each type (8 epochs, the pretrained one 3, on 400
    bundled WikiANN sentences), and the dev file they were selected on."""
    folder = tmp_path_factory.mktemp("quantize")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    paths = {
        "train": write_conll(folder / "train.txt", corpus.sentences[:400]),
        "dev": write_conll(folder / "dev.txt", corpus.sentences[400:500]),
    }
    for name, settings in TAGGERS.items():
        model = dict(settings)
        if name == "pretrained":
            model["pretrained"] = str(make_encoder_dir(folder / "bert", "bert"))
            config = TrainConfig.from_dict(
                {
                    "data": {"train": str(paths["train"]), "dev": str(paths["dev"])},
                    "model": model,
                    "training": {"epochs": 3, "batch_size": 16, "learning_rate": 1e-3},
                }
            )
        else:
            config = tiny_config(paths["train"], paths["dev"], **model)
            config.training.epochs = 8
        paths[name] = folder / f"{name}.tagsure"
        train(config, out=paths[name])
    return paths


def agreement(a: list[list[str]], b: list[list[str]]) -> float:
    pairs = [(x, y) for s, t in zip(a, b, strict=True) for x, y in zip(s, t, strict=True)]
    return sum(x == y for x, y in pairs) / len(pairs)


def dev_tokens(models: dict[str, Path]) -> list[list[str]]:
    return [s.tokens for s in load_corpus(models["dev"]).sentences]


@pytest.mark.parametrize("name", ["bilstm", "transformer"])
def test_int8_onnx_export_verifies_exactly_and_tags_like_fp32(
    name: str, models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    int8, fp32 = tmp_path / "int8.onnx", tmp_path / "fp32.onnx"
    code, out, err = run_cli(["export", str(models[name]), str(int8), "--quantize", "int8"], capsys)
    assert code == 0, err
    assert "(onnx, int8)" in out
    export_onnx(Tagger.load(models[name]), fp32)
    graph = onnx.load(str(int8))
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & {n.op_type for n in graph.graph.node} or (
        "DynamicQuantizeLSTM" in {n.op_type for n in graph.graph.node}
    )
    document = json.loads({e.key: e.value for e in graph.metadata_props}[METADATA_KEY])
    assert document["onnx"]["quantized"] == "int8"
    assert document["fingerprint"]["platform"]["runtime"].startswith("onnxruntime ")

    code, out, err = run_cli(["verify", str(int8)], capsys)
    assert code == 0, out + err
    assert "emissions bit-identical" in out and "tolerance 0," in out and "tags identical" in out
    code, out, _ = run_cli(["inspect", str(int8)], capsys)
    assert code == 0 and "entry 'quantized': int8 (dynamic" in out

    # The sentences the tiny model was trained on, where its tags are not coin flips (its dev
    # F1 is ~20-30; the real BiLSTM-CRF loses 0.01 F1 on CoNLL-2003 dev, docs/precision.md).
    sentences = [s.tokens for s in load_corpus(models["train"]).sentences[:200]]
    quantized, reference = OnnxTagger(int8), OnnxTagger(fp32)
    int8_tags, fp32_tags = quantized.tag(sentences)[0], reference.tag(sentences)[0]
    assert agreement(int8_tags, fp32_tags) > 0.95
    scores = [
        (a - b).abs().max()
        for a, b in zip(
            quantized.emissions(sentences[:20]), reference.emissions(sentences[:20]), strict=True
        )
    ]
    assert 0 < float(max(scores)) < 1.0  # quantised (not the fp32 graph), but close


def test_a_tampered_int8_fingerprint_fails_verify(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One score off by 1e-6 (its digest made to match) fails; so does the fp32 fingerprint,
    which the quantised graph does not reproduce."""
    tagger = Tagger.load(models["bilstm"])
    path = tmp_path / "int8.onnx"
    export_onnx(tagger, path, quantize="int8")
    fp32 = tagger.metadata["fingerprint"]

    def tamper(change: Callable[[dict], None]) -> tuple[int, str]:
        graph = onnx.load(str(path))
        entry = next(e for e in graph.metadata_props if e.key == METADATA_KEY)
        document = json.loads(entry.value)
        change(document["fingerprint"])
        entry.value = json.dumps(document)
        tampered = tmp_path / "tampered.onnx"
        onnx.save(graph, str(tampered))
        code, out, err = run_cli(["verify", str(tampered)], capsys)
        return code, out + err

    def nudge(stored: dict) -> None:
        stored["emissions"][3][1] += 1e-6
        scores = torch.tensor(stored["emissions"], dtype=torch.float32)
        stored["emissions_sha256"] = fingerprint.digest(scores)

    def fp32_fingerprint(stored: dict) -> None:
        here = stored["platform"]  # where the check is exact
        stored.update(fp32.to_json(), emissions=fp32.emissions.tolist(), platform=here)

    for change in (nudge, fp32_fingerprint):
        code, said = tamper(change)
        assert code == 1, said
        assert "emission scores differ from those at save time" in said
        assert "tolerance 0)" in said
    assert run_cli(["verify", str(path)], capsys)[0] == 0


def test_a_failed_int8_export_leaves_the_old_file(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the old export")

    def broken(source: Path, target: Path) -> None:
        Path(target).write_bytes(b"half a graph")
        raise RuntimeError("killed while quantising")

    monkeypatch.setattr(onnx_export, "quantize_graph", broken)
    with pytest.raises(RuntimeError, match="killed while quantising"):
        export_onnx(Tagger.load(models["bilstm"]), path, quantize="int8")
    assert path.read_bytes() == b"the old export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    with pytest.raises(ConfigError, match="--quantize 'int4': use int8"):
        export_onnx(Tagger.load(models["bilstm"]), path, quantize="int4")


@pytest.mark.parametrize("name", list(TAGGERS))
@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_lower_precision_inference_tags_like_fp32(
    name: str, precision: str, models: dict[str, Path]
) -> None:
    sentences = dev_tokens(models)
    reference = Tagger.load(models[name]).tag(sentences)[0]
    tagger = Tagger.load(models[name], precision=precision)
    assert tagger.precision == precision
    kinds = {m._get_name() for m in tagger.model.modules()}
    assert ("DynamicQuantizedLinear" in kinds) == (precision == "int8")
    assert agreement(tagger.tag(sentences)[0], reference) > 0.95
    assert Tagger.load(models[name]).tag(sentences)[0] == reference  # the file stays fp32


def test_int8_is_cpu_inference_only(models: dict[str, Path]) -> None:
    tagger = Tagger.load(models["bilstm"], precision="int8")
    with pytest.raises(ConfigError, match="quantised to int8; load it again for fp32"):
        tagger.to("cpu", precision="fp32")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            tagger.to("cuda")
    with pytest.raises(ConfigError, match=r"precision 'int8'.*\(int8 is for prediction only\)"):
        train(tiny_config(models["train"], models["dev"]), precision="int8")


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_predict_takes_a_precision_and_a_device(
    precision: str, models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["predict", str(models["bilstm"]), str(models["dev"]), "--format", "conll"]
    code, fp32, err = run_cli(args, capsys)
    assert code == 0, err
    device = "auto" if precision == "bf16" else "cpu"  # int8 runs on the CPU only
    code, lower, err = run_cli([*args, "--precision", precision, "--device", device], capsys)
    assert code == 0, err
    assert lower.count("\n\n") == fp32.count("\n\n") == 100
    same = [a == b for a, b in zip(lower.splitlines(), fp32.splitlines(), strict=True)]
    assert sum(same) / len(same) > 0.95
