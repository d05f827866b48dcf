"""Format stability: a model file written by tagsure 0.1.0 (format 1) must load forever.

The fixture was made by tests/fixtures/make_format_v1.py. If this test fails after a change,
the change broke old model files: bump FORMAT_VERSION and add a loader or migration for 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from tagsure import Tagger

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_format_v1_file_loads_and_reproduces_its_predictions() -> None:
    tagger = Tagger.load(FIXTURES / "format-v1.tagsure")  # verifies the stored fingerprint too
    expected = json.loads((FIXTURES / "format-v1.expected.json").read_text())
    tags, _ = tagger.tag(expected["sentences"])
    assert tags == expected["tags"]
    emissions = load_file(str(FIXTURES / "format-v1.emissions.safetensors"))
    for i, emission in enumerate(tagger.emissions(expected["sentences"])):
        assert torch.allclose(emission, emissions[str(i)], atol=1e-6), f"sentence {i}"
    assert sum(len(t) for t in tags) > 300 and any(t != "O" for s in tags for t in s)
