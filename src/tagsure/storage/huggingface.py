"""Moved to :mod:`tagsure.interop.huggingface`; kept for the CLI's imports until they move."""

from tagsure.interop.huggingface import CRF_FILE, export_hf, import_hf, tagger_from_hf

__all__ = ["CRF_FILE", "export_hf", "import_hf", "tagger_from_hf"]
