"""Foreign checkpoints: read them safely, match their keys strictly, report what happened.

* :mod:`~tagsure.storage.foreign.containers`: safetensors files, PyTorch pickles, nested
  state dicts and Hugging Face directories, read into plain tensors (:func:`read_checkpoint`);
* :mod:`~tagsure.storage.foreign.pickles`: ``torch.load`` with ``weights_only=True`` only; a
  pickle that needs code to load is refused with the globals it names, never executed;
* :mod:`~tagsure.storage.foreign.keys`: wrapper prefixes (``module.``, ``_orig_mod.``,
  ``model.``), renames and patterns;
* :mod:`~tagsure.storage.foreign.report`: :class:`LoadReport`, the table of every problem;
* :mod:`~tagsure.storage.foreign.load`: :func:`load_into`, which puts it all together.

tagsure's own resume state is not a foreign checkpoint: see
:mod:`tagsure.training.resume_state`.
"""

from tagsure.storage.foreign.containers import (
    CONTAINER_KEYS,
    PYTORCH_SUFFIXES,
    SAFETENSORS_SUFFIXES,
    RawCheckpoint,
    extract_state_dict,
    read_checkpoint,
    read_safetensors_header,
    resolve_weights_files,
)
from tagsure.storage.foreign.errors import CheckpointError, CheckpointMismatchError
from tagsure.storage.foreign.keys import WRAPPER_PREFIXES
from tagsure.storage.foreign.load import load_into
from tagsure.storage.foreign.pickles import load_torch_file
from tagsure.storage.foreign.report import KeyProblem, LoadReport

__all__ = [
    "CONTAINER_KEYS",
    "PYTORCH_SUFFIXES",
    "SAFETENSORS_SUFFIXES",
    "WRAPPER_PREFIXES",
    "CheckpointError",
    "CheckpointMismatchError",
    "KeyProblem",
    "LoadReport",
    "RawCheckpoint",
    "extract_state_dict",
    "load_into",
    "load_torch_file",
    "read_checkpoint",
    "read_safetensors_header",
    "resolve_weights_files",
]
