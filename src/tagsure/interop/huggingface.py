"""Hugging Face model directories in and out of tagsure: reading one, import and export.

The only place that knows HF's directory layout; the tokenizer itself (``AutoTokenizer``) says
its special tokens and length limit. tagsure never downloads, and a classifier whose size
disagrees with ``id2label`` is refused, never resized.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tagsure.data.schemes import TagScheme, split_tag
from tagsure.data.subwords import SubwordSettings, SubwordVectorizer, pretokenized_ready
from tagsure.errors import ConfigError, ModelFileError
from tagsure.heads.crf import CRF
from tagsure.models import registry
from tagsure.models.frame import Constraints
from tagsure.models.pretrained_tagger import PretrainedConfig, PretrainedSource, PretrainedTagger
from tagsure.storage.model_card import build_card, card_markdown
from tagsure.version import __version__

if TYPE_CHECKING:
    from tagsure.tagger import Tagger

logger = logging.getLogger(__name__)

# Shown to anyone who gives a hub name: tagsure never downloads.
OFFLINE_HINT = (
    "tagsure never downloads models; pass a local Hugging Face model directory "
    "(config.json, weights and tokenizer.json), e.g. one saved with save_pretrained()"
)
CRF_FILE = "tagsure_crf.json"
# Stored as the imported model's fingerprint probe, so its load is verified like any other.
PROBE = [
    "EU rejects German call to boycott British lamb .".split(),
    "Peter Blackburn visited the European Commission in Brussels on Thursday .".split(),
    "Nadim Ladki scored twice for Al-Ain against Syria in the Asian Cup .".split(),
]


def local_model_dir(name: str | os.PathLike[str]) -> Path:
    """The directory ``name`` points at, or an error saying to pass one (never a download)."""
    path = Path(name).expanduser()
    if not str(name):
        raise ConfigError(f"set [model] pretrained to a local model directory; {OFFLINE_HINT}")
    if not path.is_dir():
        raise ConfigError(f"{str(name)!r} is not a local directory; {OFFLINE_HINT}")
    for required in ("config.json", "tokenizer.json"):
        if not (path / required).is_file():
            hint = (
                "save a fast tokenizer there with AutoTokenizer.from_pretrained(...)"
                ".save_pretrained(DIR)"
                if required == "tokenizer.json"
                else "it is not a Hugging Face model directory"
            )
            raise ModelFileError(f"{path}: no {required}; {hint}")
    return path


def read_transformer_config(directory: Path) -> dict[str, Any]:
    """config.json without the task-head fields (labels, architectures) that tagsure owns."""
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    for key in ("id2label", "label2id", "num_labels", "architectures", "_name_or_path"):
        config.pop(key, None)
    return config


def subword_settings(directory: Path, transformer: dict[str, Any]) -> SubwordSettings:
    """Special ids around a window (as the tokenizer adds them to one word), padding, unknown,
    and the window: the smaller of the model's positions and ``model_max_length``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    probe = tokenizer(["a"], is_split_into_words=True, add_special_tokens=True)
    word = [i for i, w in enumerate(probe.word_ids()) if w is not None]
    prefix, suffix = probe["input_ids"][: word[0]], probe["input_ids"][word[-1] + 1 :]
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = int(transformer.get("pad_token_id") or 0)
    unk_id = tokenizer.unk_token_id
    if unk_id is None:  # the vocabulary model's own unknown token
        unk = getattr(tokenizer.backend_tokenizer.model, "unk_token", None)
        unk_id = tokenizer.convert_tokens_to_ids(unk) if unk else None
    if unk_id is None:
        unk_id = pad_id
    limit = int(transformer.get("max_position_embeddings", 512))
    if transformer.get("model_type") in {"roberta", "xlm-roberta", "camembert"}:
        limit -= int(transformer.get("pad_token_id", 1)) + 1  # positions start after padding
    if 0 < tokenizer.model_max_length < limit:
        limit = int(tokenizer.model_max_length)
    names = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    return SubwordSettings(list(prefix), list(suffix), int(pad_id), int(unk_id), limit, names)


def transformer_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The bare transformer's weights of ``directory`` (no sentence pooler)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a library doesn't draw on the user's terminal
    pretrained = AutoModel.from_pretrained(directory, local_files_only=True)
    return {k: v for k, v in pretrained.state_dict().items() if not k.startswith("pooler.")}


def read_pretrained(name: str | Path) -> PretrainedSource:
    """Everything a pretrained tagger is prepared from, read from a local model directory."""
    directory = local_model_dir(name)
    transformer = read_transformer_config(directory)
    return PretrainedSource(
        directory,
        transformer,
        (directory / "tokenizer.json").read_text(encoding="utf-8"),
        subword_settings(directory, transformer),
        transformer_weights(directory),
    )


def import_hf(directory: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Tagger:
    """Convert a token-classification directory to a tagsure model file; returns the tagger."""
    tagger = tagger_from_hf(directory)
    tagger.save(out_path)
    return tagger


def tagger_from_hf(directory: str | os.PathLike[str]) -> Tagger:
    """A tagger with the directory's transformer and classifier, first-subword pooling."""
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    from tagsure.tagger import Tagger

    path = local_model_dir(directory)
    labels = _labels(path)
    scheme = _scheme_of(labels, path)
    transformer = read_transformer_config(path)
    config = PretrainedConfig(num_labels=len(labels), transformer=transformer, pretrained=str(path))
    model = PretrainedTagger(config, Constraints.of(labels, scheme))
    hf_logging.disable_progress_bar()
    hf = AutoModelForTokenClassification.from_pretrained(path, local_files_only=True)
    classifier = getattr(hf, "classifier", None)
    if not isinstance(classifier, torch.nn.Linear):
        raise ModelFileError(
            f"{path}: {type(hf).__name__} has no linear 'classifier' over the last layer; "
            "tagsure imports BERT, RoBERTa, DistilBERT, ELECTRA, XLM-R and DeBERTa taggers"
        )
    if classifier.out_features != len(labels):
        raise ModelFileError(
            f"{path}: the classifier has {classifier.out_features} outputs but id2label names "
            f"{len(labels)} labels; the directory is inconsistent"
        )
    base = {k: v for k, v in hf.base_model.state_dict().items() if not k.startswith("pooler.")}
    model.encoder.model.load_state_dict(base, strict=True)
    model.emission.load_state_dict(classifier.state_dict(), strict=True)
    model.eval()
    vectorizer = SubwordVectorizer(
        (path / "tokenizer.json").read_text(encoding="utf-8"),
        subword_settings(path, transformer),
        labels,
    )
    metadata: dict[str, Any] = {"training": {"imported_from": str(path)}, "probe": PROBE}
    return Tagger(model, vectorizer, scheme, scheme, metadata)


def export_hf(tagger: Tagger, directory: str | Path) -> None:
    """Write ``tagger`` as a Hugging Face token-classification directory.

    A CRF's transitions go to ``tagsure_crf.json``, which ``transformers`` ignores: there the
    tags are each token's arg-max, not the CRF's Viterbi path.
    """
    from transformers import AutoConfig, AutoModelForTokenClassification

    model = tagger.model
    if not isinstance(model, PretrainedTagger):
        raise ModelFileError(
            f"only pretrained-transformer taggers export to Hugging Face, not "
            f"{type(model).__name__}; train one with [model] architecture = 'pretrained'"
        )
    config = model.config
    lossy = []
    if config.pooling != "first":
        lossy.append(f"pooling {config.pooling!r} (transformers classifies first subwords)")
    if config.layer_mix:
        lossy.append("the learned layer mix")
    if config.char_encoder != "none":
        lossy.append("character features")
    if lossy:
        raise ModelFileError(
            "a Hugging Face token classifier cannot represent " + ", ".join(lossy) + "; "
            "export needs pooling 'first', no layer_mix and char_encoder 'none'"
        )
    vectorizer: SubwordVectorizer = tagger.vectorizer
    labels = tagger.labels
    values = dict(config.transformer)
    model_type = values.pop("model_type")
    hf_config = AutoConfig.for_model(
        model_type,
        **values,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    hf = AutoModelForTokenClassification.from_config(hf_config)
    hf.config.architectures = [type(hf).__name__]
    hf.base_model.load_state_dict(model.encoder.model.state_dict(), strict=True)
    hf.classifier.load_state_dict(model.emission.state_dict(), strict=True)
    if hf.config.num_labels != len(labels):  # never a silently resized head
        raise AssertionError(f"exported head has {hf.config.num_labels} labels, not {len(labels)}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    _write_tokenizer(vectorizer, out)
    _write_card(tagger, out)
    if config.head == "crf":
        _write_crf(tagger, out)
    logger.info("exported %d labels to %s", len(labels), out)


def _write_tokenizer(vectorizer: SubwordVectorizer, out: Path) -> None:
    # The word-list-ready tokenizer (prefix space for byte-level BPE; no padding/truncation),
    # so `tokenizer(words, is_split_into_words=True)` gives the subwords tagsure saw.
    (out / "tokenizer.json").write_text(
        pretokenized_ready(vectorizer.tokenizer_json), encoding="utf-8"
    )
    settings = vectorizer.settings
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": settings.max_length,
        **settings.special_tokens,
    }
    for key in ("pad_token", "unk_token"):
        if key not in tokenizer_config:
            token = vectorizer.tokenizer.id_to_token(getattr(settings, key.replace("token", "id")))
            if token is not None:
                tokenizer_config[key] = token
    (out / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2, ensure_ascii=False), encoding="utf-8"
    )


def _write_card(tagger: Tagger, out: Path) -> None:
    """The model card as README.md, as the Hugging Face Hub shows it."""
    about = {
        "architecture": f"{registry.architecture_of(tagger.model).name} exported by tagsure",
        "tag scheme": tagger.model_scheme.value,
        "labels": ", ".join(tagger.labels),
        "tagsure version": str(tagger.metadata.get("versions", {}).get("tagsure", __version__)),
    }
    if tagger.model.config.head == "crf":
        about["CRF"] = f"transitions in {CRF_FILE}; transformers arg-maxes the logits instead"
    card = build_card(tagger.metadata)
    (out / "README.md").write_text(card_markdown(card, tagger.labels, about), encoding="utf-8")


def _write_crf(tagger: Tagger, out: Path) -> None:
    crf = tagger.model.head
    assert isinstance(crf, CRF), "only a CRF head has transitions to write"
    transitions, starts, ends = (t.detach().tolist() for t in crf._scores())
    (out / CRF_FILE).write_text(
        json.dumps(
            {
                "note": "tagsure CRF; transformers ignores this file and arg-maxes the logits",
                "labels": tagger.labels,
                "tag_scheme": tagger.model_scheme.value,
                "transitions": transitions,  # [from][to], -inf-like where not allowed
                "start": starts,
                "end": ends,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    logger.warning(
        "%s: the CRF is not part of the Hugging Face model: transformers will arg-max each "
        "token's logits instead of the CRF's Viterbi decoding, so its tags can differ (and "
        "break the %s scheme); the transitions are in %s",
        out,
        tagger.model_scheme.value,
        CRF_FILE,
    )


def _labels(path: Path) -> list[str]:
    """``id2label`` of config.json, in id order."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    id2label = config.get("id2label")
    if not id2label:
        raise ModelFileError(
            f"{path}/config.json: no id2label; a token-classification model names its labels"
        )
    labels = [id2label[key] for key in sorted(id2label, key=int)]
    if sorted(int(k) for k in id2label) != list(range(len(labels))):
        raise ModelFileError(f"{path}/config.json: id2label ids are not 0..{len(labels) - 1}")
    return labels


def _scheme_of(labels: list[str], path: Path) -> TagScheme:
    try:
        prefixes = {split_tag(label)[0] for label in labels}
    except ValueError as err:
        raise ModelFileError(
            f"{path}/config.json: id2label holds {labels[:5]}...; tagsure needs entity tags "
            f"like O, B-PER, I-PER ({err})"
        ) from None
    if prefixes & {"E", "S"}:
        return TagScheme.BIOES
    if prefixes & {"L", "U"}:
        return TagScheme.BILOU
    return TagScheme.IOB2
