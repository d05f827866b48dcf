"""Data-parallel training: one process per device, started by torchrun, summing gradients.

``torchrun --nproc-per-node N -m tagsure train ...`` (or ``tagsure train --nproc N``) starts N
processes with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``
set; :func:`join` reads them and joins the process group (gloo on the CPU, NCCL on CUDA). A
process started without them is a :data:`SINGLE` world and runs exactly as it always has.

What makes N processes train the model one process would:

- Every rank builds the same epoch of *global* batches (``batch_size × N`` sentences, an order
  fixed by (seed, epoch)) and takes its slice of each (:meth:`World.shard`): disjoint shards,
  reproducible.
- Each rank divides its loss by the *global* batch's denominator and the gradients are summed
  (one flat all-reduce per step, what ``DistributedDataParallel`` does, done after the
  micro-batches so a step may have several backward passes): the step one process would take
  on the whole batch, up to the order of the additions.
- Dropout on rank r at step s draws from a generator seeded with (seed, r, s), so nothing of it
  needs to be saved and a resumed run draws the same masks.
- Dev counts are summed across ranks (:meth:`World.merge_metrics`), so the score is exactly
  the one process's; rank 0 alone writes files and the others wait at a barrier.

A rank that dies closes its connections: the others' next collective fails and they stop with
a :class:`DistributedError` naming the run's last checkpoint; a rank that hangs makes the
others fail after :data:`TIMEOUT_S` (``TAGSURE_COLLECTIVE_TIMEOUT`` seconds).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from tagsure.errors import DistributedError
from tagsure.evaluation.metrics import MetricsAccumulator

logger = logging.getLogger(__name__)

#: How long a collective waits for a rank that neither answers nor dies (a checkpoint write of
#: a large model on rank 0 must fit in it).
TIMEOUT_S = float(os.environ.get("TAGSURE_COLLECTIVE_TIMEOUT", "300"))
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run: rank ``rank`` of ``size``."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    where: str = ""  # what a failure message tells the user to resume from
    device: str = "cpu"  # where collectives' tensors live (NCCL's on the rank's GPU)

    @property
    def parallel(self) -> bool:
        return self.size > 1

    @property
    def writes(self) -> bool:  # one process writes files: the first
        return self.rank == 0

    def shard(self, ids: np.ndarray) -> np.ndarray:
        """This rank's contiguous part of a global batch (parts differ by one at most)."""
        if not self.parallel:
            return ids
        return np.array_split(ids, self.size)[self.rank]

    def seed_step(self, seed: int, step: int) -> None:
        """Dropout of this rank's ``step`` from (seed, rank, step): resumable without state."""
        if self.parallel:
            state = np.random.SeedSequence([seed, self.rank, step]).generate_state(1, np.uint64)
            torch.manual_seed(int(state[0]) >> 1)

    def sum_gradients(
        self, parameters: Sequence[torch.nn.Parameter], *values: float
    ) -> list[float]:
        """Sum the parameters' gradients and ``values`` over the ranks, in place; returns the
        summed values. A parameter no rank gave a gradient keeps none (as on one process)."""
        if not self.parallel:
            return list(values)
        params = [p for p in parameters if p.requires_grad]
        summed = torch.tensor(values, dtype=torch.float64, device=self.device)
        with self.collective("summing gradients"):
            if params:
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
                flags = torch.tensor([p.grad is not None for p in params], device=grads[0].device)
                flat = torch.cat([g.reshape(-1) for g in grads] + [flags.to(grads[0].dtype)])
                dist.all_reduce(flat)
            dist.all_reduce(summed)
        offset, given = 0, flat[-len(params) :] if params else None
        for index, p in enumerate(params):
            n = p.numel()
            if given is not None and given[index] > 0:
                p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n
        return summed.tolist()

    def check_resume(self, saved: int, batch_size: int, checkpoint_dir: object, unit: str) -> None:
        """Resume with the world size of the checkpoint, or a refusal saying what would change."""
        if saved != self.size:
            raise DistributedError(
                f"{checkpoint_dir}: the run was checkpointed with {saved} process(es), an "
                f"effective batch of {batch_size} x {saved} = {batch_size * saved} {unit}; "
                f"with {self.size} it would be {batch_size * self.size} and the epoch's "
                "batches would differ, so the resume would not be exact. Resume with "
                f"{saved} process(es) (--nproc {saved}, or torchrun --nproc-per-node {saved})"
            )

    def gather_rows(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """The ranks' ``tensor``s (equal shapes) concatenated along ``dim`` in rank order."""
        if not self.parallel:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.size)]
        with self.collective("gathering state"):
            dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def rows(self, count: int) -> slice:
        """This rank's contiguous part of ``count`` rows (``count`` a multiple of the size)."""
        per = count // self.size
        return slice(self.rank * per, (self.rank + 1) * per)

    def merge_metrics(self, accumulator: MetricsAccumulator) -> MetricsAccumulator:
        """The counts of every rank's shard, summed: the metrics of the whole set."""
        if not self.parallel:
            return accumulator
        gathered: list[MetricsAccumulator | None] = [None] * self.size
        with self.collective("summing dev counts"):
            dist.all_gather_object(gathered, accumulator)
        total = MetricsAccumulator()
        for part in gathered:
            assert part is not None
            total.merge(part)
        return total

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (e.g. a deadline one rank reached)."""
        if not self.parallel:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        with self.collective("agreeing to stop"):
            dist.all_reduce(value)
        return bool(value.item())

    def barrier(self, why: str) -> None:
        """Wait for every rank (e.g. for rank 0 to finish writing a file)."""
        if self.parallel:
            with self.collective(why):
                dist.barrier()

    @contextmanager
    def collective(self, what: str) -> Iterator[None]:
        """Turn a dead or silent peer into one clear error instead of a hang or a traceback."""
        try:
            yield
        except (RuntimeError, dist.DistBackendError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            resume = ""
            if self.where:
                resume = f"; resume from {self.where} with the same number of processes"
            raise DistributedError(
                f"rank {self.rank} of {self.size}: another process of this run stopped while "
                f"{what} ({reason}){resume}"
            ) from None


SINGLE = World()


def join(device: torch.device | None = None, where: str = "") -> World:
    """The world torchrun's variables describe, its process group joined; :data:`SINGLE`
    where they are absent (``WORLD_SIZE`` unset or 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(where=where)
    missing = [name for name in LAUNCH_VARIABLES if name not in os.environ]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE is {size} but {', '.join(missing)} are not set: start the run with "
            "torchrun (torchrun --nproc-per-node N -m tagsure train ...) or tagsure train --nproc N"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    cuda = device is not None and device.type == "cuda"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
        logger.info("rank %d of %d joined (%s)", rank, size, backend)
    return World(rank, local_rank, size, where, f"cuda:{local_rank}" if cuda else "cpu")


def rank_device(device: torch.device, world: World) -> torch.device:
    """A CUDA run puts rank r on its machine's GPU ``LOCAL_RANK`` (one GPU per process)."""
    if world.parallel and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def leave() -> None:
    """Leave the process group at the end of a launched run (nothing on one process)."""
    if dist.is_initialized():
        dist.destroy_process_group()
