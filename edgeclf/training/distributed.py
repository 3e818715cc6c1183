"""Running under `torchrun`: PyTorch's own process groups, no cluster code of edgeclf's own.

`torchrun --nproc-per-node N -m edgeclf train ...` starts N copies of the same command with
RANK / WORLD_SIZE / LOCAL_WORLD_SIZE set. The copies split feature extraction between them
(through the shared, locked feature cache), rank 0 trains the head on the cached features and
shares it, all ranks fine-tune together with DistributedDataParallel, and rank 0 alone writes
the run directory. Without those variables everything runs in one process, unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..data.augment import Augment
from .features import extract


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes outputs and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether several processes train together."""
        return self.size > 1

    def cores(self) -> int:
        """CPU cores this process may use without oversubscribing its node's other ranks."""
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            n = os.cpu_count() or 1
        return max(1, n // self.local_size)

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            torch.distributed.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of `values` over all ranks."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return t.tolist()


def setup(device: str = "cpu") -> World:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA); a lone process gets World()."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_WORLD_SIZE", size)))
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend)
    torch.set_num_threads(world.cores())
    if not world.main:
        os.environ["EDGECLF_PROGRESS"] = "0"  # one set of progress bars, rank 0's
    return world


def teardown(world: World) -> None:
    """Leave the process group (after the last collective)."""
    if world.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def extract_shared(world: World, make_fn: Any, converts: bool, pre: Any, paths: list[str], caches: dict,
                   views_of: list, augment: Augment, workers: int | None, desc: str,
                   hashed: tuple | None = None) -> tuple:
    """features.extract(), with the missing vectors shared out between torchrun's processes first."""
    if world.distributed:
        if world.main and converts:
            make_fn()  # one rank converts the network to LiteRT; the others load its cached .tflite
        world.barrier()
        # Each rank computes its share of the missing vectors into the shared, locked cache.
        _, *prior = extract(make_fn, pre, paths, caches, views_of, augment, workers=workers, desc=desc,
                            shard=(world.rank, world.size), hashed=hashed)
        hashed = tuple(prior)
        world.barrier()
        for c in caches.values():
            c.refresh()
    return extract(make_fn, pre, paths, caches, views_of, augment, workers=workers, desc=desc, hashed=hashed)
