"""Train flair's SequenceTagger on CoNLL-2003 as a tagsure peer and write one JSON result.

Run with the peers venv (created by benchmarks/peers/setup.sh):

    benchmarks/.venv-peers/bin/python benchmarks/peers/flair_peer.py \
        --train train.txt --dev dev.txt --out-json flair.json --workdir runs/peers/flair \
        --max-epochs 10 --max-minutes 30

Model: one-hot word embeddings trained from scratch (OneHotEmbeddings.from_corpus defaults:
min_freq 3, 300 dims) stacked with character embeddings (char BiLSTM, Lample et al.), a BiLSTM
with hidden_size 256 and a CRF. Trained with flair's ModelTrainer.train defaults (SGD, lr 0.1,
batch 32, anneal on plateau, gradient clipping at 5), except embeddings_storage_mode="none"
(see the comment at trainer.train below: the default breaks dev scoring for trained embeddings).

Time cap: a trainer plugin (BudgetPlugin) counts training time, i.e. wall time of the training
batches without the per-epoch dev evaluation and checkpoint saving. When the budget runs out
mid-epoch it evaluates the partial epoch on dev itself (a curve point with a fractional epoch),
keeps that model if it is the best so far, and raises flair's TrainingInterrupt, which the
trainer handles as a normal early stop. The trainer then reloads the best checkpoint.

dev_f1_after_reload: the trained model is saved with tagger.save() and evaluated on dev again
in a fresh process with SequenceTagger.load() (this script re-run with --reload-eval).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import _common as common

# The guard goes in before flair (and through it transformers/huggingface_hub) is imported.
common.install_network_guard()
# OMP_WAIT_POLICY is left to the caller (conll03.py runs every contestant with the same one).
# With the default (spin-waiting), 2 torch threads on a 2-core machine where anything else runs
# were measured 10x slower than 1 thread (47 vs 616 tokens/s); PASSIVE gave 567. Benchmark on
# an otherwise idle machine.

import flair  # noqa: E402
import torch  # noqa: E402
from flair.data import Dictionary, Sentence  # noqa: E402
from flair.datasets import ColumnCorpus, ColumnDataset  # noqa: E402
from flair.embeddings import (  # noqa: E402
    CharacterEmbeddings,
    OneHotEmbeddings,
    StackedEmbeddings,
)
from flair.models import SequenceTagger  # noqa: E402
from flair.trainers import ModelTrainer  # noqa: E402
from flair.trainers.plugins import TrainerPlugin, TrainingInterrupt  # noqa: E402

COLUMNS = {0: "text", 3: "ner"}  # token POS chunk NER
LABEL_TYPE = "ner"
EVAL_BATCH_SIZE = 64  # ModelTrainer.train's default eval_batch_size


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, help="CoNLL-2003 train file")
    parser.add_argument("--dev", type=Path, required=True, help="CoNLL-2003 dev file")
    parser.add_argument("--out-json", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, help="scratch dir for data, checkpoints, logs")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="training-time budget (dev evaluation not counted)",
    )
    parser.add_argument("--train-limit", type=int, help="use only the first N train sentences")
    parser.add_argument("--dev-limit", type=int, help="use only the first N dev sentences")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--predict-batch-size", type=int, default=EVAL_BATCH_SIZE)
    parser.add_argument(
        "--reload-eval",
        type=Path,
        metavar="MODEL",
        help="internal: load MODEL in this fresh process, evaluate on --dev, "
        "write {'dev_f1': ...} to --out-json",
    )
    args = parser.parse_args(argv)
    if args.reload_eval is None and (args.train is None or args.workdir is None):
        parser.error("--train and --workdir are required")
    return args


class BudgetPlugin(TrainerPlugin):
    """Records the learning curve and stops training when the time budget is spent."""

    def __init__(self, max_seconds: float, dev, base_path: Path) -> None:
        super().__init__()
        self.max_seconds = max_seconds
        self.dev = dev
        self.base_path = base_path
        self.train_seconds = 0.0  # training time of completed epochs
        self.eval_seconds = 0.0
        self.tokens = 0
        self.full_epochs = 0
        self.partial_epoch = 0.0  # fraction of the interrupted epoch, if any
        self.curve: list[dict] = []
        self.best_f1 = -1.0
        self.stop_before_next_epoch = False
        self.wall_start: float | None = None
        self.epoch_start = 0.0
        self.eval_start = 0.0

    def _point(self, epoch: float, dev_f1: float) -> None:
        self.curve.append(
            {
                "minutes": round(self.train_seconds / 60.0, 4),
                "wall_minutes": round((time.perf_counter() - self.wall_start) / 60.0, 4),
                "epoch": epoch,
                "dev_f1": round(float(dev_f1), 6),
            }
        )
        self.best_f1 = max(self.best_f1, float(dev_f1))

    @TrainerPlugin.hook
    def before_training_epoch(self, epoch: int, **kw) -> None:
        if self.stop_before_next_epoch:
            raise TrainingInterrupt(f"time budget of {self.max_seconds / 60:.2f} min spent")
        if self.wall_start is None:
            self.wall_start = time.perf_counter()
        self.epoch_start = time.perf_counter()

    @TrainerPlugin.hook
    def after_training_batch(
        self, batch, batch_no: int, total_number_of_batches: int, epoch: int, **kw
    ) -> None:
        self.tokens += sum(len(sentence) for sentence in batch)
        elapsed = self.train_seconds + time.perf_counter() - self.epoch_start
        if elapsed < self.max_seconds or batch_no + 1 == total_number_of_batches:
            return  # at the end of an epoch the trainer's own evaluation follows
        self.train_seconds = elapsed
        self.partial_epoch = (batch_no + 1) / total_number_of_batches
        model = self.trainer.model
        model.eval()
        eval_start = time.perf_counter()
        result = model.evaluate(
            self.dev, gold_label_type=LABEL_TYPE, mini_batch_size=EVAL_BATCH_SIZE, return_loss=False
        )
        self.eval_seconds += time.perf_counter() - eval_start
        improved = result.main_score > self.best_f1
        self._point(round(epoch - 1 + self.partial_epoch, 4), result.main_score)
        if improved:
            # The trainer reloads best-model.pt after an interrupt; keep this one if better.
            model.save(self.base_path / "best-model.pt")
        raise TrainingInterrupt(
            f"time budget of {self.max_seconds / 60:.2f} min spent in epoch {epoch}"
        )

    @TrainerPlugin.hook
    def after_training_epoch(self, epoch: int, **kw) -> None:
        self.train_seconds += time.perf_counter() - self.epoch_start
        self.full_epochs = epoch
        self.eval_start = time.perf_counter()

    @TrainerPlugin.hook
    def after_evaluation(self, epoch: int, validation_scores, **kw) -> None:
        self.eval_seconds += time.perf_counter() - self.eval_start
        self._point(epoch, validation_scores[0])
        if self.train_seconds >= self.max_seconds:
            # Not raised here: the trainer saves best-model.pt after this event.
            self.stop_before_next_epoch = True


def build_char_dictionary(corpus, path: Path) -> Dictionary:
    """Character dictionary from the training data, saved where CharacterEmbeddings loads it.

    Without path_to_char_dict, CharacterEmbeddings downloads flair's 'common-chars' dictionary.
    """
    chars = Dictionary(add_unk=True)
    for sentence in corpus.train:
        for token in sentence:
            for char in token.text:
                chars.add_item(char)
    chars.save(path)
    return chars


def reload_eval(args: argparse.Namespace) -> int:
    """Fresh-process check that a saved model still works: load it and evaluate on dev."""
    torch.set_num_threads(args.threads)
    flair.device = torch.device("cpu")
    tagger = SequenceTagger.load(args.reload_eval)
    tagger.eval()
    dev = ColumnDataset(args.dev, COLUMNS)

    def dev_f1() -> float:
        return tagger.evaluate(
            dev, gold_label_type=LABEL_TYPE, mini_batch_size=EVAL_BATCH_SIZE, return_loss=False
        ).main_score

    scores = {"dev_f1": dev_f1()}
    # Known flair 0.15.1 bug: StackedEmbeddings prefixes member names with their position
    # ("0-one-hot-text", "1-Char"), but OneHotEmbeddings.to_params() does not save the name, so
    # a loaded model has "one-hot-text". Tokens concatenate embeddings sorted by name, so the
    # loaded model feeds [char, one-hot] where training used [one-hot, char]. Also measure the
    # score with the names restored, to show that this is the whole story.
    renamed = False
    for i, embedding in enumerate(getattr(tagger.embeddings, "embeddings", [])):
        if not embedding.name.startswith(f"{i}-"):
            embedding.name = f"{i}-{embedding.name}"
            renamed = True
    scores["dev_f1_names_restored"] = dev_f1() if renamed else scores["dev_f1"]
    args.out_json.write_text(json.dumps(scores) + "\n", encoding="utf-8")
    return 0


def time_prediction(
    tagger: SequenceTagger, dev_sentences: list[list[str]], batch_size: int
) -> float:
    """Seconds for tagger.predict on the whole dev set, pre-tokenized, after a warm-up."""

    def unlabeled() -> list[Sentence]:
        return [Sentence([line.split()[0] for line in sentence]) for sentence in dev_sentences]

    tagger.eval()
    tagger.predict(unlabeled()[: 4 * batch_size], mini_batch_size=batch_size)  # warm-up
    sentences = unlabeled()
    start = time.perf_counter()
    tagger.predict(sentences, mini_batch_size=batch_size)
    return time.perf_counter() - start


def train(args: argparse.Namespace) -> dict:
    workdir = args.workdir.resolve()
    data_dir = workdir / "data"
    base_path = workdir / "flair-train"
    notes: list[str] = []

    # Sliced copies without -DOCSTART- pseudo-sentences (the same data spacy_peer.py uses).
    train_sents = common.read_conll(args.train, args.train_limit)
    dev_sents = common.read_conll(args.dev, args.dev_limit)
    common.write_conll(train_sents, data_dir / "train.txt")
    common.write_conll(dev_sents, data_dir / "dev.txt")
    notes.append("-DOCSTART- lines dropped; one flair Sentence per CoNLL sentence")

    torch.set_num_threads(args.threads)
    flair.device = torch.device("cpu")
    flair.set_seed(args.seed)

    corpus = ColumnCorpus(
        data_dir,
        COLUMNS,
        train_file="train.txt",
        dev_file="dev.txt",
        autofind_splits=False,
        sample_missing_splits=False,
    )
    label_dict = corpus.make_label_dictionary(label_type=LABEL_TYPE, add_unk=False)
    char_dict = build_char_dictionary(corpus, workdir / "char-dictionary.pkl")

    # from_corpus logs the whole vocabulary at INFO level; keep the log readable.
    flair_log = logging.getLogger("flair")
    level = flair_log.level
    flair_log.setLevel(logging.WARNING)
    word_embeddings = OneHotEmbeddings.from_corpus(corpus)
    flair_log.setLevel(level)
    char_embeddings = CharacterEmbeddings(path_to_char_dict=str(workdir / "char-dictionary.pkl"))
    tagger = SequenceTagger(
        hidden_size=256,
        embeddings=StackedEmbeddings([word_embeddings, char_embeddings]),
        tag_dictionary=label_dict,
        tag_type=LABEL_TYPE,
        use_crf=True,
    )

    budget = BudgetPlugin(args.max_minutes * 60.0, corpus.dev, base_path)
    trainer = ModelTrainer(tagger, corpus)
    wall_start = time.perf_counter()
    trainer.train(
        base_path,
        learning_rate=0.1,
        mini_batch_size=32,
        max_epochs=args.max_epochs,
        plugins=[budget],
        # Not the default ("cpu"): "cpu" keeps the embeddings computed during the first dev
        # evaluation (made under no_grad, so flair takes them for static) and reuses them in
        # every later one, although these embeddings are trained: the dev curve and best-model
        # selection then lag behind or stay at 0 (flair issue #3439, workaround "none").
        embeddings_storage_mode="none",
        save_final_model=False,  # the best model is saved below with tagger.save()
    )
    wall_seconds = time.perf_counter() - wall_start
    if not budget.curve:
        raise RuntimeError("training produced no dev evaluation")

    # The trainer has reloaded best-model.pt into `tagger`; check it in this process too.
    tagger.eval()
    final = tagger.evaluate(
        corpus.dev, gold_label_type=LABEL_TYPE, mini_batch_size=EVAL_BATCH_SIZE, return_loss=False
    )
    model_path = workdir / "flair-model.pt"
    tagger.save(model_path)

    predict_seconds = time_prediction(tagger, dev_sents, args.predict_batch_size)
    dev_tokens = common.count_tokens(dev_sents)
    peak_rss = common.peak_rss_mb()

    reload_json = workdir / "reload-eval.json"
    reload_json.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--reload-eval",
        str(model_path),
        "--dev",
        str(data_dir / "dev.txt"),
        "--out-json",
        str(reload_json),
        "--threads",
        str(args.threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        reload_scores = json.loads(reload_json.read_text(encoding="utf-8"))
        reload_f1 = reload_scores["dev_f1"]
        reload_fixed_f1 = reload_scores["dev_f1_names_restored"]
    else:
        reload_f1 = reload_fixed_f1 = None
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        notes.append(f"reload evaluation failed (exit {proc.returncode}): {tail[0]}")

    epochs = budget.full_epochs
    if budget.partial_epoch:
        notes.append(
            f"time budget hit during epoch {epochs + 1} "
            f"({budget.partial_epoch:.0%} done); last curve point is that partial epoch"
        )
    notes += [
        "embeddings_storage_mode='none' instead of the default 'cpu': with 'cpu' flair reuses "
        "the dev-set embeddings of the first evaluation in every later one, although the "
        "one-hot and character embeddings are being trained (flair issue #3439)",
        "minutes = training time without dev evaluation and checkpoint saving; "
        "wall_minutes (per curve point) include them",
        "train_tokens_per_s = train_tokens / training time (evaluation excluded)",
        f"predict timed on {len(dev_sents)} pre-tokenized dev sentences, one call to "
        f"tagger.predict(mini_batch_size={args.predict_batch_size}) after a warm-up",
        "peak_rss_mb: this process (training, evaluation, prediction); the reload check runs "
        "in a separate process",
        f"dev F1 of the best model re-evaluated in process after training: {final.main_score:.4f}",
    ]
    if reload_f1 is not None and abs(reload_f1 - final.main_score) > 0.005:
        notes.append(
            f"dev F1 changed after save + load in a fresh process: "
            f"{final.main_score:.4f} -> {reload_f1:.4f}; with the stacked embedding "
            f"names restored after load: {reload_fixed_f1:.4f} (flair 0.15.1 drops "
            f"OneHotEmbeddings' '0-' name prefix on load, which reorders the stacked "
            f"embedding vector)"
        )

    return {
        "name": "flair",
        "version": flair.__version__,
        "config": {
            "model": "SequenceTagger BiLSTM-CRF",
            "embeddings": [
                {
                    "type": "OneHotEmbeddings.from_corpus",
                    "min_freq": 3,
                    "embedding_length": word_embeddings.embedding_length,
                    "vocab_size": len(word_embeddings.vocab_dictionary),
                },
                {
                    "type": "CharacterEmbeddings",
                    "char_embedding_dim": 25,
                    "hidden_size_char": 25,
                    "char_vocab_size": len(char_dict),
                    "char_dict": "built from the training data",
                },
            ],
            "hidden_size": 256,
            "use_crf": True,
            "tag_format": "BIOES (flair default)",
            "labels": label_dict.get_items(),
            "trainer": "ModelTrainer.train defaults",
            "optimizer": "SGD",
            "learning_rate": 0.1,
            "mini_batch_size": 32,
            "anneal_factor": 0.5,
            "patience": 3,
            "max_grad_norm": 5.0,
            "embeddings_storage_mode": "none",
            "max_epochs": args.max_epochs,
            "max_minutes": args.max_minutes,
            "train_sentences": len(train_sents),
            "dev_sentences": len(dev_sents),
            "seed": args.seed,
            "threads": args.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "torch": torch.__version__,
            "device": "cpu",
        },
        "curve": budget.curve,
        "best_dev_f1": max(point["dev_f1"] for point in budget.curve),
        "train_minutes": round(budget.train_seconds / 60.0, 4),
        "wall_minutes": round(wall_seconds / 60.0, 4),
        "eval_minutes": round(budget.eval_seconds / 60.0, 4),
        "epochs": epochs,
        "train_tokens": budget.tokens,
        "train_tokens_per_s": round(budget.tokens / budget.train_seconds, 1),
        "predict_tokens_per_s": round(dev_tokens / predict_seconds, 1),
        "dev_tokens": dev_tokens,
        "peak_rss_mb": round(peak_rss, 1),
        "model_size_mb": round(common.path_size_bytes(model_path) / 2**20, 3),
        "model_size_bytes": common.path_size_bytes(model_path),
        "dev_f1_final": round(final.main_score, 6),
        "dev_f1_after_reload": None if reload_f1 is None else round(reload_f1, 6),
        "dev_f1_after_reload_names_restored": None
        if reload_fixed_f1 is None
        else round(reload_fixed_f1, 6),
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reload_eval is not None:
        return reload_eval(args)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # Keep flair's cache out of ~/.flair and log refused network attempts for subprocesses too.
    flair.cache_root = workdir / "flair-cache"
    netlog = workdir / "network-attempts.log"
    netlog.unlink(missing_ok=True)
    os.environ[common.NETLOG_ENV] = str(netlog)

    result = train(args)
    common.check_network_log(netlog)
    common.write_result(result, args.out_json)
    print(common.summary_line(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
