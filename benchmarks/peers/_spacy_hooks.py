"""Measurement hooks for `spacy train`, loaded with `--code` by spacy_peer.py.

spaCy has no time limit for training, and its log's elapsed time includes the dev evaluations.
This module wraps two module-level factories of spacy.training.loop (train() looks them up
when it starts, which is after `--code` files are imported):

- create_evaluation_callback: times every dev evaluation, appends one JSON line per evaluation
  (step, words seen, training seconds without evaluation, wall seconds, scores) to
  $TAGSURE_PEERS_SPACY_EVENTS, and flags a stop once the training time reaches
  $TAGSURE_PEERS_MAX_SECONDS.
- create_train_batches: counts batches and words and, once the stop flag is up, ends the batch
  stream. spaCy's loop then finishes as if max_epochs had been reached: model-best (saved at
  each best evaluation) and model-last are written as usual. The stop always comes right
  after an evaluation, so no trained-but-unevaluated steps are lost; the budget can be
  overshot by at most one eval_frequency interval.

Nothing here changes what is trained: batches, evaluation and checkpointing are spaCy's own.
"""

from __future__ import annotations

import json
import os
import time

from spacy.training import loop

MAX_SECONDS = float(os.environ.get("TAGSURE_PEERS_MAX_SECONDS", "inf"))
EVENTS_PATH = os.environ.get("TAGSURE_PEERS_SPACY_EVENTS")


class _State:
    start: float | None = None  # when the first batch was handed to the loop
    eval_seconds = 0.0
    steps = 0
    words = 0
    epoch = 0
    stop = False


def _train_seconds(now: float) -> float:
    return now - _State.start - _State.eval_seconds


def _emit(event: dict) -> None:
    if EVENTS_PATH:
        with open(EVENTS_PATH, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")


_create_train_batches = loop.create_train_batches
_create_evaluation_callback = loop.create_evaluation_callback


def create_train_batches(nlp, corpus, batcher, max_epochs):
    try:
        for epoch, batch in _create_train_batches(nlp, corpus, batcher, max_epochs):
            if _State.stop:
                return
            if _State.start is None:  # after spaCy has loaded the training corpus
                _State.start = time.perf_counter()
            _State.epoch = epoch
            _State.steps += 1
            _State.words += sum(len(eg) for eg in batch)  # the same count as spaCy's "words"
            yield epoch, batch
    finally:
        # Runs when the batch stream ends (time budget or max_epochs), or when spaCy drops it
        # after an early stop (patience / max_steps).
        if _State.start is not None:
            now = time.perf_counter()
            _emit(
                {
                    "event": "end",
                    "steps": _State.steps,
                    "words": _State.words,
                    "epoch_index": _State.epoch,
                    "train_seconds": _train_seconds(now),
                    "wall_seconds": now - _State.start,
                    "eval_seconds": _State.eval_seconds,
                    "time_budget_hit": _State.stop,
                }
            )


def create_evaluation_callback(nlp, dev_corpus, weights):
    evaluate = _create_evaluation_callback(nlp, dev_corpus, weights)

    def timed_evaluate():
        started = time.perf_counter()
        score, other_scores = evaluate()
        now = time.perf_counter()
        _State.eval_seconds += now - started
        train_seconds = _train_seconds(now)
        _emit(
            {
                "event": "eval",
                "step": _State.steps - 1,
                "words": _State.words,
                "epoch_index": _State.epoch,
                "train_seconds": train_seconds,
                "wall_seconds": now - _State.start,
                "eval_seconds": now - started,
                "score": score,
                "ents_f": other_scores.get("ents_f"),
                "ents_p": other_scores.get("ents_p"),
                "ents_r": other_scores.get("ents_r"),
            }
        )
        if train_seconds >= MAX_SECONDS:
            _State.stop = True
        return score, other_scores

    return timed_evaluate


loop.create_train_batches = create_train_batches
loop.create_evaluation_callback = create_evaluation_callback
