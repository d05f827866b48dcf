"""The model card: written from [card] and --card, filled by training, shown by inspect, kept by
load and save, refused when malformed, and written as README.md by the Hugging Face export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tagsure import Tagger, load_corpus, train
from tagsure.errors import ModelFileError
from tagsure.storage.document import write_document
from tagsure.storage.model_file import MODEL_FILE, read_model_file
from tests.helpers import BUNDLED, TINY_MODEL, run_cli, write_conll

FIXTURE = Path(__file__).parent / "fixtures" / "format-v1.tagsure"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("card")
    sentences = load_corpus(BUNDLED / "wikiann-en-train.txt").sentences
    return (
        write_conll(folder / "train.txt", sentences[:200]),
        write_conll(folder / "dev.txt", sentences[300:360]),
    )


@pytest.fixture(scope="module")
def carded_model(
    corpus: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """A model trained by `tagsure train` with a [card] section and --card options."""
    folder = tmp_path_factory.mktemp("carded")
    model = "\n".join(f"{k} = {v}" for k, v in TINY_MODEL.items())
    config = folder / "tagger.toml"
    config.write_text(
        f'[data]\ntrain = "{corpus[0]}"\ndev = "{corpus[1]}"\n\n[model]\n{model}\n\n'
        "[training]\nepochs = 1\nbatch_size = 16\n\n[card]\n"
        'description = "A tiny tagger for tests."\nlicense = "mit"\n'
        'intended_use = "Tests only; <not> for production & real text."\nlanguage = "en"\n',
        encoding="utf-8",
    )
    out = folder / "model.tagsure"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tagsure",
            "train",
            "--config",
            str(config),
            "--out",
            str(out),
            "--card",
            "license=cc-by-4.0",
            "--card",
            "name=Tiny WikiANN tagger",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_training_fills_the_card_and_the_options_win(carded_model: tuple[Path, str]) -> None:
    path, _ = carded_model
    document, _ = read_model_file(path)
    card = document["card"]
    assert card["name"] == "Tiny WikiANN tagger"
    assert card["license"] == "cc-by-4.0"  # --card over [card]
    assert card["description"] == "A tiny tagger for tests."
    assert card["language"] == "en"
    assert card["training_data"] == "train.txt; dev: dev.txt"  # names, no machine's folders
    dev = document["metrics"]["dev"]["micro"]
    assert card["metrics"]["micro"] == {k: dev[k] for k in ("precision", "recall", "f1")}
    assert card["metrics"]["epoch"] == document["metrics"]["epoch"] == 1
    assert set(card["metrics"]["per_type"]) == {"LOC", "ORG", "PER"}


def test_inspect_shows_the_card(
    carded_model: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = carded_model
    code, out, err = run_cli(["inspect", str(path)], capsys)
    assert (code, err) == (0, "")
    f1 = read_model_file(path)[0]["card"]["metrics"]["micro"]["f1"]
    lines = out.splitlines()
    start = lines.index("  model card     : ")
    assert lines[start + 1 : start + 4] == [
        "    name: Tiny WikiANN tagger",
        "    description: A tiny tagger for tests.",
        "    language: en",
    ]
    assert "    license: cc-by-4.0" in lines
    assert any(line.startswith(f"    metrics: dev F1 {100 * f1:.2f} (precision ") for line in lines)
    code, out, _ = run_cli(["inspect", str(path), "--json"], capsys)
    assert json.loads(out)["tagsure"]["card"]["license"] == "cc-by-4.0"


def test_load_and_save_keep_the_card(carded_model: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = carded_model
    tagger = Tagger.load(path)
    tagger.save(tmp_path / "again.tagsure")
    assert (
        read_model_file(tmp_path / "again.tagsure")[0]["card"] == read_model_file(path)[0]["card"]
    )


def test_a_file_from_before_cards_loads_and_says_it_has_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert "card" not in read_model_file(FIXTURE)[0]
    tagger = Tagger.load(FIXTURE)
    assert tagger.metadata["card"] == {}
    code, out, _ = run_cli(["inspect", str(FIXTURE)], capsys)
    assert code == 0
    assert "  model card     : none (saved before tagsure kept model cards)" in out.splitlines()
    tagger.save(tmp_path / "resaved.tagsure")  # saved again: a card from what the file knows
    card = read_model_file(tmp_path / "resaved.tagsure")[0]["card"]
    assert set(card) <= {"training_data", "metrics"}


@pytest.mark.parametrize(
    ("card", "problem"),
    [
        ("MIT", "the model card is a str, not an object"),
        ({"license": 3}, "model card field 'license' is not a string"),
        ({"licence": "mit"}, "unknown model card field 'licence'"),
        ({"metrics": [1]}, "model card metrics are not an object"),
    ],
)
def test_a_malformed_card_is_a_model_file_error(
    carded_model: tuple[Path, str], tmp_path: Path, card: object, problem: str
) -> None:
    document, tensors = read_model_file(carded_model[0])
    document["card"] = card
    bad = tmp_path / "bad.tagsure"
    write_document(bad, MODEL_FILE, document, dict(tensors))
    with pytest.raises(ModelFileError, match=f"^{bad}: {problem}"):
        Tagger.load(bad)


def test_a_bad_card_option_is_one_line(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        ["train", "--train", str(corpus[0]), "--out", str(tmp_path / "m"), "--card", "licence"],
        capsys,
    )
    assert code == 1
    assert err == (
        "tagsure: error: --card 'licence': expected KEY=VALUE with KEY one of name, description, "
        "language, license, training_data, intended_use, limitations, authors\n"
    )
    assert not (tmp_path / "m").exists()


def test_hf_export_writes_the_card_as_readme(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from huggingface_hub import ModelCard

    from tagsure import TrainConfig
    from tagsure.interop.huggingface import export_hf
    from tests.hf_models import make_encoder_dir

    encoder = make_encoder_dir(tmp_path / "encoder", "bert")
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(corpus[0]), "dev": str(corpus[1]), "tag_scheme": "IOB2"},
            "model": {"architecture": "pretrained", "pretrained": str(encoder)},
            "training": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "seed": 5},
            "card": {
                "license": "cc-by-sa-4.0",
                "language": "en",
                "intended_use": "Tests: <b>not</b> real text.",
                "training_data": "WikiANN English, 200 sentences (bundled sample)",
            },
        }
    )
    tagger = train(config).tagger
    export_hf(tagger, tmp_path / "exported")
    readme = (tmp_path / "exported" / "README.md").read_text(encoding="utf-8")
    hub = ModelCard.load(tmp_path / "exported" / "README.md")  # the Hub's own parser
    assert hub.data.license == "cc-by-sa-4.0"
    assert hub.data.language == "en"
    assert hub.data.library_name == "tagsure"
    assert hub.data.pipeline_tag == "token-classification"
    assert "# tagsure named-entity tagger" in readme
    assert "## Intended use\n\nTests: <b>not</b> real text.\n" in readme
    assert "## Training data\n\nWikiANN English, 200 sentences (bundled sample)\n" in readme
    assert "## Entity types\n\nLOC, ORG, PER\n" in readme
    f1 = 100 * tagger.metadata["metrics"]["dev"]["micro"]["f1"]
    assert "| all (micro) | " in readme and f"| {f1:.2f} |" in readme
