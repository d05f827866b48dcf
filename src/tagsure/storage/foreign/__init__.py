"""Foreign checkpoints: read them safely, match their keys strictly, report what happened.

``containers`` and ``pickles`` read files into plain tensors (never running a pickle's code),
``keys`` matches wrapper prefixes and renames, ``load`` loads strictly and ``report`` says how.
tagsure's own resume state is not one of these: see :mod:`tagsure.training.resume_state`.
"""

from tagsure.storage.foreign.containers import extract_state_dict, read_checkpoint
from tagsure.storage.foreign.errors import CheckpointError
from tagsure.storage.foreign.load import load_into
from tagsure.storage.foreign.pickles import load_torch_file
from tagsure.storage.foreign.report import CheckpointMismatchError, LoadReport

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "LoadReport",
    "extract_state_dict",
    "load_into",
    "load_torch_file",
    "read_checkpoint",
]
