"""Micro-batching: concurrent requests are merged into one ONNX Runtime call.

The collector takes the first waiting request, then keeps taking more until ``max_batch`` images or
``max_wait_ms`` have passed, and runs the batch on one worker thread. Requests are grouped by the
model they were decoded for, so a hot reload never mixes two models in one call: requests already
queued finish on the model they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from components.serving.model_source import LoadedModel


@dataclass
class _Item:
    model: LoadedModel
    pixels: np.ndarray  # float32 (n, C, H, W)
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> count

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0


BatchObserver = Callable[[int, Sequence[float]], None]  # (batch size, each request's queue wait in seconds)


class MicroBatcher:
    def __init__(self, max_batch: int, max_wait_ms: float, on_batch: BatchObserver | None = None) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ort-batch")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._collect(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def submit(self, model: LoadedModel, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Queue float32 (n, C, H, W) pixels for ``model``; returns (probabilities (n, K), embedding (n, D))."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(model, pixels, future))
        return await future

    async def _gather(self) -> list[_Item]:
        assert self._queue is not None
        items = [await self._queue.get()]
        n = len(items[0].pixels)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while n < self.max_batch:
            try:
                left = deadline - asyncio.get_running_loop().time()
                item = self._queue.get_nowait() if left <= 0 else await asyncio.wait_for(self._queue.get(), left)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            items.append(item)
            n += len(item.pixels)
        return items

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            groups: dict[int, list[_Item]] = {}
            for item in items:
                groups.setdefault(id(item.model), []).append(item)
            for group in groups.values():
                live = [it for it in group if not it.future.done()]
                if not live:
                    continue
                model = live[0].model
                batch = np.concatenate([it.pixels for it in live]) if len(live) > 1 else live[0].pixels
                if self.on_batch is not None:
                    started = time.perf_counter()
                    self.on_batch(len(batch), [started - it.queued_at for it in live])
                try:
                    probs, emb = await loop.run_in_executor(self._executor, model.run, batch)
                except Exception as err:  # noqa: BLE001 - handed to every waiting request
                    for it in live:
                        if not it.future.done():
                            it.future.set_exception(err)
                    continue
                self.stats.batches += 1
                self.stats.images += len(batch)
                self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
                start = 0
                for it in live:
                    n = len(it.pixels)
                    if not it.future.done():
                        it.future.set_result((probs[start : start + n], emb[start : start + n]))
                    start += n
