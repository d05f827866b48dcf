"""A run stopped by ``max_minutes``: its last epoch is logged as partial, and it can go on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from tagsure import TrainConfig, load_corpus, train
from tagsure.training import run as run_module
from tagsure.training.log import EpochRecord
from tagsure.training.trainer import resume
from tests.helpers import BUNDLED, TINY_MODEL, write_conll


@dataclass
class Recorder:
    """What progress sees: each step's mean loss per sentence, and the epoch records."""

    losses: list[float] = field(default_factory=list)
    records: list[EpochRecord] = field(default_factory=list)

    def epoch_start(self, epoch: int, batches: int) -> None: ...
    def batch_end(self, loss: float, tokens: int) -> None:
        self.losses.append(loss)

    def epoch_end(self, record: EpochRecord) -> None:
        self.records.append(record)


def config_for(folder: Path, **training: object) -> TrainConfig:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(folder / "train.txt", corpus.sentences[:400])
    dev_path = write_conll(folder / "dev.txt", corpus.sentences[400:450])
    return TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "model": TINY_MODEL,
            # random batches of 16: all full but the epoch's last (400 = 25 * 16)
            "training": {"epochs": 2, "batch_size": 16, "seed": 4, "group_by_length": False}
            | training,
        }
    )


def test_time_limit_logs_a_partial_epoch_and_resume_with_more_minutes_continues_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = train(config_for(tmp_path))

    # The deadline after 7 of the 25 steps of epoch 1 (a clock would make the count vary).
    monkeypatch.setattr(run_module.Run, "out_of_time", lambda self: self.state.steps >= 7)
    out, checkpoints = tmp_path / "cut" / "model.tagsure", tmp_path / "run"
    recorder = Recorder()
    limited = config_for(tmp_path, max_minutes=0.0005)  # 30 ms: spent by the 7 steps, too
    cut = train(limited, out, recorder, checkpoint_dir=checkpoints)
    assert cut.stop_reason == "reached the time limit of 0.0005 minutes"
    [record] = cut.history
    assert record.epoch == 1 and record.partial
    assert len(recorder.losses) == 7
    # the mean over the 7 batches that ran, not their sum over all 400 sentences
    assert record.train_loss == pytest.approx(sum(recorder.losses) / 7, rel=1e-9)
    assert record.train_loss > 3 * sum(recorder.losses) * 16 / 400
    assert "(partial epoch)" in _format(record)
    [logged] = map(json.loads, out.with_suffix(".metrics.jsonl").read_text().splitlines())
    assert logged["partial"] is True and logged["train_loss"] == record.train_loss
    assert out.with_suffix(".curve.png").stat().st_size > 0
    monkeypatch.undo()

    # Without more time the run stops at once; with it, it finishes as the straight run did.
    again = resume(checkpoints)
    assert again.stop_reason.startswith("reached the time limit")
    assert again.train_tokens == cut.train_tokens  # no step ran
    assert [(r.epoch, r.partial) for r in again.history] == [(1, True)]
    finished = resume(checkpoints, max_minutes=30)
    assert finished.stop_reason == "reached 2 epochs"
    assert [(r.epoch, r.partial) for r in finished.history] == [(1, False), (2, False)]
    assert [r.train_loss for r in finished.history] == [r.train_loss for r in straight.history]
    expected = straight.tagger.model.state_dict()
    for name, tensor in finished.tagger.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    log = [json.loads(line) for line in out.with_suffix(".metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["partial"]) for r in log] == [(1, False), (2, False)]


def _format(record: EpochRecord) -> str:
    from tagsure.training.log import format_record

    return format_record(record)
