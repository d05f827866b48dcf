"""The architecture holds: no import cycle between packages or modules, inside functions too.

The layers contract (``[tool.importlinter]`` in pyproject.toml, run by ``make lint``) keeps each
layer from importing the layers above it; these tests add what a layers contract cannot see:
two packages of one layer, or two modules of one package, that import each other. grimp reads
every import statement, at module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import grimp

ROOT = "tagsure"


def _cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every edge a -> b from which a can be reached again."""

    def reaches(start: str, goal: str) -> bool:
        seen: set[str] = set()
        todo = [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(edges.get(node, ()))
        return False

    return sorted((a, b) for a, targets in edges.items() for b in targets if reaches(b, a))


def _module_edges() -> dict[str, set[str]]:
    graph = grimp.build_graph(ROOT, include_external_packages=False)
    return {m: graph.find_modules_directly_imported_by(m) - {ROOT} for m in graph.modules - {ROOT}}


def test_no_import_cycle_between_modules() -> None:
    edges = _module_edges()
    assert len(edges) > 50  # the whole package was read
    assert not _cycles(edges), "modules that import each other, directly or through others"


def test_no_import_cycle_between_packages() -> None:
    modules = _module_edges()
    packages = {m.rsplit(".", 1)[0] for m in modules} - {ROOT}

    def package_of(module: str) -> str:  # the innermost package, or a top-level module itself
        while module not in packages and module.count(".") > 1:
            module = module.rsplit(".", 1)[0]
        return module

    edges: dict[str, set[str]] = {}
    for importer, imported in modules.items():
        a = package_of(importer)
        for b in map(package_of, imported):
            if a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
                edges.setdefault(a, set()).add(b)
    assert {"tagsure.storage", "tagsure.models", "tagsure.tagger"} <= set(edges)
    assert not _cycles(edges), "packages that import each other, directly or through others"


def test_public_api_exports_what_the_docs_use() -> None:
    import importlib.util
    import re
    from pathlib import Path

    import tagsure

    docs = Path(__file__).resolve().parents[1]
    text = "\n".join(p.read_text() for p in [docs / "README.md", *docs.glob("docs/*.md")])
    used = set(re.findall(r"\btagsure\.([A-Za-z_]\w*)\b(?!\.)", text))
    for names in re.findall(r"from tagsure import ([\w, ]+)", text):
        used |= {n.strip() for n in names.split(",") if n.strip()}
    names = {n for n in used if importlib.util.find_spec(f"tagsure.{n}") is None}
    assert {"load_corpus", "train"} <= names  # the docs were read
    assert not sorted(n for n in names if not hasattr(tagsure, n))
    for name in ("OnnxTagger", "TagsureError", "ModelFileError", "train_lm", "LMTrainConfig"):
        assert name in tagsure.__all__
