"""`tagsure demo` (what `make demo` runs): a fixed amount of work, so a sensible result anywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXPECTED = {("PER", "Angela Merkel"), ("PER", "Emmanuel Macron"), ("LOC", "Paris")}
EXPECTED |= {("ORG", "European Union")}


@pytest.mark.slow
def test_demo_tags_its_sentence_sensibly_and_states_a_test_f1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tagsure", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="2"),  # the model of a 2-core machine, exactly
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "for 3 epochs" in out and "identical metrics" in out
    f1 = float(re.search(r"test F1 in memory: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert f1 > 60
    found = set(re.findall(r"^ {4}(PER|LOC|ORG|MISC) +'([^']*)' \[", out, re.M))
    assert {("PER", "Angela Merkel"), ("PER", "Emmanuel Macron")} <= found, out
    assert len(found & EXPECTED) >= 3, out  # "or close": one of the four may be missed
    assert found <= EXPECTED | {("LOC", "European Union")}, out  # nothing else, no long spans
