"""Row and chunk limits shared by the streaming, worker and engine paths, and the defaults of
the CLI options that set them: a leaf module, so ``tagsure --help`` reads them without importing
the streaming code (or anything heavy)."""

from __future__ import annotations

# Documents per tagging call in the CLI's chunks and the Spark UDF's batches:
# the tagger sorts a call's sentences by length, so a larger call pads less; at 1,024 raw
# CoNLL-2003 documents a call cost ~22% less CPU per word than at 256 (docs/benchmarks.md).
BATCH_SIZE = 1024
MAX_CHARS = 100_000  # longer documents are refused per row: split them upstream
