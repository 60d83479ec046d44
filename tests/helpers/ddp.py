"""A DDP rank's reading of a streamed split, for ``torch.multiprocessing.spawn``: a module of its own, so that each
spawned rank imports torch and the shard reader only (not the test module's imports, Lightning among them)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.distributed as dist

from components.data import shards
from components.training.shard_stream import ShardStream, StreamedSplit


def read_share(rank: int, world: int, port: int, prepared: str, out: str) -> None:
    """Rank ``rank`` of ``world`` (gloo on 127.0.0.1:``port``) streams the train split of ``prepared`` once as
    evaluation and once as training; rank 0 saves ``{train: [each rank's image digests]}`` to ``out``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # this spawned rank's own environment
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        split = StreamedSplit(Path(prepared), shards.read_index(Path(prepared)), "train")
        result = {}
        for train in (False, True):
            stream = ShardStream(split, 16, train=train, seed=7)
            seen = [hashlib.sha256(x.permute(1, 2, 0).numpy().tobytes()).hexdigest() for x, _ in stream]
            gathered: list = [None] * world
            dist.all_gather_object(gathered, seen)
            result[train] = gathered
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()
