"""Row and chunk limits shared by the streaming, worker and engine paths, and the defaults of
the CLI options that set them: a leaf module, so ``tagsure --help`` reads them without importing
the streaming code (or anything heavy)."""

from __future__ import annotations

BATCH_SIZE = 256  # rows per chunk: large enough to fill the tagger's batches, small in memory
MAX_CHARS = 100_000  # longer documents are refused per row: split them upstream
