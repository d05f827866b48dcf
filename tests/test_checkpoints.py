"""Foreign checkpoints load exactly, or fail loudly with every problem named.

Every checkpoint here is a real file written to tmp_path by the same code paths users hit:
``nn.DataParallel``, ``torch.compile``, a Lightning-style ``torch.save`` dict, safetensors.
"""

from __future__ import annotations

import ast
import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tagsure.storage.foreign import (
    CheckpointError,
    CheckpointMismatchError,
    LoadReport,
    extract_state_dict,
    load_into,
    load_torch_file,
    read_checkpoint,
)

torch.set_num_threads(1)

SRC = Path(__file__).resolve().parents[1] / "src" / "tagsure"


class TinyTagger(nn.Module):
    """Tagger-shaped: an encoder and a head, plus a buffer (LayerNorm/BatchNorm-like)."""

    def __init__(self, num_labels: int = 3, vocab: int = 20, dim: int = 16) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Embedding(vocab, dim), nn.LayerNorm(dim))
        self.head = nn.Linear(dim, num_labels)
        self.register_buffer("scale", torch.tensor([2.0]))


def trained(seed: int = 0, **kwargs: int) -> TinyTagger:
    """A model with distinctive (seeded) values, so a non-load is detectable."""
    torch.manual_seed(seed)
    model = TinyTagger(**kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model.scale.fill_(float(seed) + 3.0)
    return model


def fresh(**kwargs: int) -> TinyTagger:
    torch.manual_seed(12345)
    return TinyTagger(**kwargs)


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_all_equal(model: nn.Module, reference: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert set(state) == set(reference)
    for key, value in reference.items():
        assert torch.equal(state[key], value), f"{key} differs after loading"


# --- wrapper prefixes --------------------------------------------------------------------


def test_dataparallel_checkpoint_loads_every_tensor(tmp_path: Path) -> None:
    source = trained()
    wrapped = nn.DataParallel(source)  # no GPU: it just wraps, keys gain "module."
    path = tmp_path / "dp.pt"
    torch.save(wrapped.state_dict(), path)
    assert all(k.startswith("module.") for k in torch.load(path, weights_only=True))

    target = fresh()
    report = load_into(target, path)

    assert_all_equal(target, clone_state(source))
    assert report.prefix_stripped == "module."
    assert "DataParallel" in report.prefix_transform
    assert report.loaded_tensors == len(source.state_dict()) == report.model_tensors
    assert report.loaded_elements == sum(v.numel() for v in source.state_dict().values())
    assert report.missing == [] and report.unexpected == [] and report.ok
    assert report.container_key is None
    assert "stripped 'module.'" in report.format_table()


def test_torch_compile_checkpoint_loads_every_tensor(tmp_path: Path) -> None:
    source = trained(1)
    compiled = torch.compile(source)  # no forward: only the wrapper's state_dict is needed
    state = compiled.state_dict()
    assert all(k.startswith("_orig_mod.") for k in state)
    path = tmp_path / "compiled.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))

    target = fresh()
    report = load_into(target, path)

    assert_all_equal(target, clone_state(source))
    assert report.prefix_stripped == "_orig_mod."
    assert "torch.compile" in report.prefix_transform
    assert report.kind == "safetensors"

    # compile on top of DataParallel stacks both prefixes.
    both = torch.compile(nn.DataParallel(trained(2))).state_dict()
    assert next(iter(both)).startswith("_orig_mod.module.")
    target2 = fresh()
    report2 = load_into(target2, both)
    assert report2.prefix_stripped == "_orig_mod.module."
    assert_all_equal(target2, clone_state(trained(2)))


def test_lightning_checkpoint_loads_every_tensor(tmp_path: Path) -> None:
    source = trained(4)
    optimizer = torch.optim.Adam(source.parameters())
    source.head.weight.sum().backward()
    optimizer.step()  # a real optimizer state (tensors, ints, floats) beside the weights
    reference = clone_state(source)
    path = tmp_path / "epoch=3.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()},
            "epoch": 3,
            "global_step": 120,
            "optimizer_states": [optimizer.state_dict()],
            "hyper_parameters": {"lr": 0.001, "labels": ["O", "B-PER", "I-PER"]},
        },
        path,
    )

    target = fresh()
    report = load_into(target, path)

    assert_all_equal(target, reference)
    assert report.container_key == "state_dict"
    assert report.prefix_stripped == "model."
    assert "Lightning" in report.prefix_transform
    assert report.to_dict()["container_key"] == "state_dict"


def test_plain_checkpoint_into_wrapped_model_adds_prefix() -> None:
    source = trained(5)
    target = nn.DataParallel(fresh())
    report = load_into(target, source.state_dict())
    assert report.prefix_added == "module."
    assert_all_equal(target.module, clone_state(source))


def test_module_whose_own_keys_start_with_model_keeps_them() -> None:
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nn.Linear(2, 2)

    source, target = Wrapper(), Wrapper()
    report = load_into(target, source.state_dict())
    assert report.prefix_stripped == "" and report.prefix_added == ""
    assert torch.equal(target.model.weight, source.model.weight)


@pytest.mark.parametrize(
    ("container", "expected_key"),
    [
        (lambda sd: {"model_state_dict": sd, "epoch": 1}, "model_state_dict"),
        (lambda sd: {"model": sd}, "model"),
        (lambda sd: {"module": sd, "global_steps": 10}, "module"),
        (lambda sd: {"net": sd}, "net"),
        (lambda sd: {"model": {"state_dict": sd, "step": 2}}, "model/state_dict"),
        (lambda sd: {"checkpoint": {"model": sd}}, "checkpoint/model"),
    ],
)
def test_common_containers_are_found(tmp_path: Path, container, expected_key: str) -> None:
    source = trained(6)
    path = tmp_path / "ckpt.pth"
    torch.save(container(source.state_dict()), path)
    target = fresh()
    report = load_into(target, path)
    assert report.container_key == expected_key
    assert_all_equal(target, clone_state(source))


def test_container_without_tensors_is_explained() -> None:
    with pytest.raises(CheckpointError, match=r"no tensors found.*'epoch'"):
        extract_state_dict({"epoch": 3, "optimizer": {"lr": 0.1}})


# --- strictness ---------------------------------------------------------------------------


def test_missing_head_fails_and_lists_every_missing_key() -> None:
    checkpoint = {k: v for k, v in trained(7).state_dict().items() if not k.startswith("head.")}
    target = fresh()
    before = clone_state(target)

    with pytest.raises(CheckpointMismatchError) as info:
        load_into(target, checkpoint)

    message = str(info.value)
    assert "head.weight" in message and "head.bias" in message
    assert "missing" in message and "nothing was loaded" in message
    assert "allow_missing=['head.*']" in message  # tells what to do next
    problems = {(p.kind, p.key) for p in info.value.report.problems}
    assert problems == {("missing", "head.weight"), ("missing", "head.bias")}
    # Atomic: the encoder tensors that *did* match were not copied either.
    assert_all_equal(target, before)


def test_missing_head_allowed_loads_the_rest_and_reports_it() -> None:
    source = trained(8)
    checkpoint = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    target = fresh()
    head_before = clone_state(target.head)

    report = load_into(target, checkpoint, allow_missing=["head.*"])

    assert report.missing == ["head.weight", "head.bias"]
    assert report.loaded_tensors == len(checkpoint) == report.model_tensors - 2
    assert report.loaded_elements == sum(v.numel() for v in checkpoint.values())
    for key, value in checkpoint.items():
        assert torch.equal(target.state_dict()[key], value), key
    assert torch.equal(target.head.weight, head_before["weight"])  # untouched
    assert torch.equal(target.head.bias, head_before["bias"])
    table = report.format_table()
    assert "left unloaded (allowed by allow_missing): 2" in table
    assert "head.weight" in table and f"loaded        : {len(checkpoint)} of" in table


def test_head_of_another_size_fails_naming_both_shapes() -> None:
    big = trained(9, num_labels=50)  # a "vocabulary" head where a 3-label head belongs
    with pytest.raises(CheckpointMismatchError) as info:
        load_into(fresh(), big.state_dict())
    message = str(info.value)
    assert "head.weight" in message
    assert "checkpoint has shape (50, 16), the model expects (3, 16)" in message
    assert "checkpoint has shape (50,), the model expects (3,)" in message
    shape = next(p for p in info.value.report.problems if p.key == "head.weight")
    assert (shape.kind, shape.found_shape, shape.expected_shape) == ("shape", (50, 16), (3, 16))


def test_shape_mismatch_is_not_waived_by_allow_patterns() -> None:
    with pytest.raises(CheckpointMismatchError, match=r"head\.weight"):
        load_into(
            fresh(),
            trained(9, num_labels=50).state_dict(),
            allow_missing=["head.*"],
            ignore_unexpected=["head.*"],
        )


def test_deliberate_head_replacement_is_possible_explicitly() -> None:
    source = trained(9, num_labels=50)
    target = fresh()
    head_before = clone_state(target.head)
    report = load_into(
        target,
        source.state_dict(),
        rename=[(r"^head\.", "checkpoint_head.")],
        ignore_unexpected=["checkpoint_head.*"],
        allow_missing=["head.*"],
    )
    assert report.unexpected == ["checkpoint_head.weight", "checkpoint_head.bias"]
    assert torch.equal(target.head.weight, head_before["weight"])
    assert torch.equal(target.encoder[0].weight, source.encoder[0].weight)


def test_all_problems_are_listed_together() -> None:
    checkpoint = dict(trained(10, num_labels=5).state_dict())
    del checkpoint["encoder.1.bias"]
    checkpoint["aux.weight"] = torch.zeros(4, 4)
    with pytest.raises(CheckpointMismatchError) as info:
        load_into(fresh(), checkpoint)
    kinds = {(p.kind, p.key) for p in info.value.report.problems}
    assert kinds == {
        ("missing", "encoder.1.bias"),
        ("unexpected", "aux.weight"),
        ("shape", "head.weight"),
        ("shape", "head.bias"),
    }
    lines = str(info.value).splitlines()
    assert any(line.split()[:2] == ["missing", "encoder.1.bias"] for line in lines)
    assert any(line.split()[:2] == ["unexpected", "aux.weight"] for line in lines)
    assert any(line.split()[:2] == ["shape", "head.weight"] for line in lines)


def test_unexpected_keys_fail_unless_ignored() -> None:
    checkpoint = dict(trained(11).state_dict())
    checkpoint["lm_head.weight"] = torch.zeros(20, 16)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected\s+lm_head\.weight"):
        load_into(fresh(), checkpoint)
    target = fresh()
    report = load_into(target, checkpoint, ignore_unexpected=["lm_head.*"])
    assert report.unexpected == ["lm_head.weight"]
    assert report.loaded_tensors == report.model_tensors
    assert "dropped from checkpoint (allowed by ignore_unexpected): 1" in report.format_table()


@pytest.mark.parametrize("allow", [False, True])
def test_checkpoint_matching_nothing_always_raises(allow: bool) -> None:
    """The strict=False trap: a load that loads nothing is never a success."""
    checkpoint = {"bert.embeddings.weight": torch.zeros(20, 16), "cls.bias": torch.zeros(3)}
    target = fresh()
    before = clone_state(target)
    kwargs = {"allow_missing": ["*"], "ignore_unexpected": ["*"]} if allow else {}
    with pytest.raises(CheckpointMismatchError) as info:
        load_into(target, checkpoint, **kwargs)
    assert "0 of 2 checkpoint tensors match any of the model's 6 keys" in str(info.value)
    assert info.value.report.loaded_tensors == 0
    assert_all_equal(target, before)


def test_rename_rules_apply_after_prefix_detection() -> None:
    source = trained(12)
    foreign = {
        k.replace("encoder.", "enc.").replace("head.", "classifier."): v
        for k, v in nn.DataParallel(source).state_dict().items()
    }
    target = fresh()
    report = load_into(
        target, foreign, rename=[(r"^enc\.", "encoder."), (r"^classifier\.", "head.")]
    )
    assert report.prefix_stripped == "module."
    assert report.renamed["module.classifier.weight"] == "head.weight"
    assert_all_equal(target, clone_state(source))


def test_rename_rules_merging_keys_are_refused() -> None:
    with pytest.raises(CheckpointError, match="rename rules map several checkpoint keys"):
        load_into(fresh(), trained().state_dict(), rename=[(r"\.(weight|bias)$", ".x")])


def test_float_dtypes_are_cast_and_reported(tmp_path: Path) -> None:
    source = trained(13)
    path = tmp_path / "half.safetensors"
    save_file({k: v.half() for k, v in source.state_dict().items()}, str(path))
    target = fresh()
    report = load_into(target, path)
    assert report.dtype_casts["head.weight"] == ("float16", "float32")
    assert target.head.weight.dtype == torch.float32
    assert torch.equal(target.head.weight, source.head.weight.half().float())
    assert "float16 -> float32" in report.format_table()


def test_non_float_dtype_mismatch_is_a_problem() -> None:
    model = nn.BatchNorm1d(4)
    checkpoint = dict(model.state_dict())
    checkpoint["num_batches_tracked"] = torch.tensor(3, dtype=torch.int32)
    with pytest.raises(CheckpointMismatchError, match="dtype int32, the model expects int64"):
        load_into(nn.BatchNorm1d(4), checkpoint)


def test_tagsure_model_file_and_hf_directory_are_sources(tmp_path: Path) -> None:
    source = trained(14)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    doc = {"format_version": 1, "architecture": "tagsure.BiLSTMCRF.v1", "labels": ["O", "X", "Y"]}
    tagsure_file = tmp_path / "m.tagsure"
    save_file(
        state,
        str(tagsure_file),
        metadata={"format": "tagsure", "format_version": "1", "tagsure": json.dumps(doc)},
    )
    target = fresh()
    report = load_into(target, tagsure_file)
    assert report.kind == "tagsure"
    assert_all_equal(target, clone_state(source))

    hf = tmp_path / "hf"
    hf.mkdir()
    save_file(state, str(hf / "model.safetensors"))
    (hf / "config.json").write_text("{}")
    target2 = fresh()
    assert load_into(target2, hf).kind == "huggingface"
    assert_all_equal(target2, clone_state(source))


def test_report_to_dict_is_json(tmp_path: Path) -> None:
    checkpoint = {k: v for k, v in trained().state_dict().items() if k != "scale"}
    report = load_into(fresh(), checkpoint, allow_missing=["scale"])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["missing"] == ["scale"]
    assert data["ok"] is True and data["problems"] == []
    assert data["loaded_tensors"] == 5
    assert isinstance(report, LoadReport)


# --- refusing unsafe and broken files -----------------------------------------------------


class _Payload:
    """Pickles to a call of ``open(marker, "w")``: harmless, but proves code would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_pickle_is_refused_and_never_executed(tmp_path: Path, writer: str) -> None:
    # Control: the payload really runs code under a plain unpickler.
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Payload(control))).close()
    assert control.exists()

    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    checkpoint = {"state_dict": trained().state_dict(), "callback": _Payload(marker)}
    if writer == "torch.save":
        torch.save(checkpoint, path)
    else:
        with path.open("wb") as fh:
            pickle.dump(checkpoint, fh)

    with pytest.raises(CheckpointError) as info:
        load_into(fresh(), path)
    message = str(info.value)
    assert str(path) in message
    assert "is a pickle that would run code" in message
    assert "tagsure will not execute it" in message
    assert "io.open" in message  # names what it would have called
    assert "safetensors.torch.save_file" in message  # how to convert
    assert not marker.exists()


def test_unknown_pickle_of_plain_data_is_refused_without_crashing(tmp_path: Path) -> None:
    path = tmp_path / "plain.bin"
    with path.open("wb") as fh:
        pickle.dump({"w": [1, 2, 3]}, fh)
    with pytest.raises(CheckpointError, match=r"plain\.bin.*tagsure will not execute it"):
        load_torch_file(path)


def _safetensors_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "full.safetensors"
    save_file({k: v.contiguous() for k, v in trained().state_dict().items()}, str(path))
    return path.read_bytes()


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        (4, "too small to be a safetensors file"),
        (60, "truncated safetensors file: its header claims"),
        (-10, "truncated safetensors file: the header describes"),
    ],
)
def test_truncated_safetensors_fails_naming_the_file(
    tmp_path: Path, keep: int, expected: str
) -> None:
    data = _safetensors_bytes(tmp_path)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError) as info:
        load_into(fresh(), path)
    assert str(path) in str(info.value) and expected in str(info.value)
    assert "Re-copy or re-save it" in str(info.value)


def test_corrupt_safetensors_header_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 5) + b"{oops")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: not a valid safetensors"):
        read_checkpoint(path)


@pytest.mark.parametrize("zip_format", [True, False])
def test_truncated_torch_file_fails_naming_the_file(tmp_path: Path, zip_format: bool) -> None:
    full = tmp_path / "full.pt"
    torch.save(trained().state_dict(), full, _use_new_zipfile_serialization=zip_format)
    path = tmp_path / "cut.pt"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError) as info:
        load_into(fresh(), path)
    assert str(path) in str(info.value)
    assert "truncated or corrupt" in str(info.value)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt: no such file"):
        load_into(fresh(), tmp_path / "nope.pt")
    odd = tmp_path / "weights.xyz"
    odd.write_text("hello")
    with pytest.raises(CheckpointError, match=r"weights\.xyz: unknown checkpoint format"):
        load_into(fresh(), odd)


# --- the rules hold across the whole package ---------------------------------------------


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_no_strict_false_and_no_unsafe_torch_load_anywhere_in_tagsure() -> None:
    offenders = []
    for file in sorted(SRC.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for call in _calls(tree):
            keywords = {k.arg: k.value for k in call.keywords}
            strict = keywords.get("strict")
            if isinstance(strict, ast.Constant) and strict.value is False:
                offenders.append(f"{file}:{call.lineno}: strict=False")
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "load":
                owner = func.value
                if isinstance(owner, ast.Name) and owner.id == "torch":
                    weights_only = keywords.get("weights_only")
                    if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                        offenders.append(f"{file}:{call.lineno}: torch.load without weights_only")
    assert offenders == []
