"""Deterministic, host-sharded, prefetched input pipeline over a random-access dataset.

The batch of step s is a pure function of (seed, s): epoch e = s*B // N picks
a permutation seeded by (seed, e), and the step takes its next B indices.
A resumed run therefore sees exactly the batches an uninterrupted run would.
Each host reads only its slice of the global batch (`process_index`), and a
background thread prepares the next `prefetch` batches.
"""

from __future__ import annotations

import concurrent.futures
import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding


def data_mesh(num_devices: int = 0) -> Mesh:
  """A mesh with one "data" axis over the first `num_devices` devices (0: all of them)."""
  devices = jax.devices()
  if num_devices:
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), ("data",))


class InputPipeline:
  """Batches for any step of a `dataset` with `len()` and `[index] -> dict`."""

  def __init__(
    self,
    dataset,
    batch_size: int,
    seed: int,
    sharding: NamedSharding | None = None,
    prefetch: int = 2,
    process_index: int | None = None,
    process_count: int | None = None,
  ):
    self.dataset = dataset
    self.batch_size = int(batch_size)
    self.seed = int(seed)
    self.sharding = sharding
    self.process_index = jax.process_index() if process_index is None else process_index
    self.process_count = jax.process_count() if process_count is None else process_count
    if len(dataset) == 0:
      raise ValueError("the dataset is empty")
    if self.batch_size % self.process_count:
      raise ValueError(f"batch_size {batch_size} is not divisible by {self.process_count} hosts")
    self.prefetch = max(int(prefetch), 0)
    self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1) if self.prefetch else None
    self._pending: dict[int, concurrent.futures.Future] = {}

  @functools.lru_cache(maxsize=4)  # noqa: B019 - a handful of epochs, owned by the pipeline
  def _permutation(self, epoch: int) -> np.ndarray:
    return np.random.default_rng((self.seed, epoch)).permutation(len(self.dataset))

  def global_indices(self, step: int) -> np.ndarray:
    """Dataset indices of the global batch of `step`. (B,)."""
    size = len(self.dataset)
    positions = step * self.batch_size + np.arange(self.batch_size)
    epochs, offsets = positions // size, positions % size
    return np.array([self._permutation(int(e))[o] for e, o in zip(epochs, offsets, strict=True)])

  def local_batch(self, step: int) -> dict[str, np.ndarray]:
    """This host's slice of the batch of `step`, stacked numpy arrays."""
    indices = self.global_indices(step)
    per_host = self.batch_size // self.process_count
    mine = indices[self.process_index * per_host : (self.process_index + 1) * per_host]
    if hasattr(self.dataset, "__getitems__"):  # batched reads (array_record sources)
      examples = self.dataset.__getitems__([int(i) for i in mine])
    else:
      examples = [self.dataset[int(i)] for i in mine]
    return {key: np.stack([example[key] for example in examples]) for key in examples[0]}

  def _fetch(self, step: int) -> dict[str, np.ndarray]:
    if self._executor is None:
      return self.local_batch(step)
    future = self._pending.pop(step, None) or self._executor.submit(self.local_batch, step)
    for ahead in range(step + 1, step + 1 + self.prefetch):
      if ahead not in self._pending:
        self._pending[ahead] = self._executor.submit(self.local_batch, ahead)
    return future.result()

  def batch(self, step: int):
    """The global batch of `step` as jax arrays placed with `sharding`."""
    local = self._fetch(step)
    if self.sharding is None:
      return jax.tree_util.tree_map(jax.numpy.asarray, local)
    return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_process_local_data(self.sharding, x), local
    )

  def close(self) -> None:
    if self._executor is not None:
      self._executor.shutdown(wait=False, cancel_futures=True)
