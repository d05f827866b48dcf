"""Old names of :mod:`tagsure.training.resume_state`, kept while callers move over."""

from tagsure.training.resume_state import RESUME_STATE_NAME as CHECKPOINT_NAME
from tagsure.training.resume_state import ResumeState as Checkpoint
from tagsure.training.resume_state import load_resume_state as load_checkpoint
from tagsure.training.resume_state import save_resume_state as save_checkpoint

__all__ = ["CHECKPOINT_NAME", "Checkpoint", "load_checkpoint", "save_checkpoint"]
