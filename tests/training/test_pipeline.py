"""The input pipeline: batches are a pure function of (seed, step), split across hosts."""

import numpy as np

from jaxface.training import InputPipeline


class Numbers:
  def __len__(self):
    return 10

  def __getitem__(self, index):
    return {"x": np.array([index], np.int32)}


def test_batches_are_a_function_of_seed_and_step():
  first = InputPipeline(Numbers(), batch_size=4, seed=5, prefetch=2)
  second = InputPipeline(Numbers(), batch_size=4, seed=5, prefetch=0)
  for step in (0, 1, 7, 2, 30):  # any order, as after a resume
    np.testing.assert_array_equal(first.batch(step)["x"], second.batch(step)["x"])
  # An epoch (10 examples, batch 4) visits every example once before repeating.
  seen = np.concatenate([first.global_indices(step) for step in range(5)])  # 20 = 2 epochs
  assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
  other_seed = InputPipeline(Numbers(), batch_size=4, seed=6)
  assert not np.array_equal(other_seed.global_indices(0), first.global_indices(0))
  first.close()


def test_hosts_read_disjoint_slices_of_the_global_batch():
  hosts = [
    InputPipeline(Numbers(), batch_size=4, seed=1, process_index=i, process_count=2)
    for i in range(2)
  ]
  for step in range(6):
    parts = [host.local_batch(step)["x"][:, 0] for host in hosts]
    np.testing.assert_array_equal(np.concatenate(parts), hosts[0].global_indices(step))


class BatchedNumbers(Numbers):
  def __init__(self):
    self.calls = 0

  def __getitems__(self, indices):
    self.calls += 1
    return [self[i] for i in indices]


def test_batched_reads_give_the_same_batches():
  batched = BatchedNumbers()
  plain = InputPipeline(Numbers(), batch_size=4, seed=3, prefetch=0)
  fast = InputPipeline(batched, batch_size=4, seed=3, prefetch=0)
  for step in range(5):
    np.testing.assert_array_equal(fast.batch(step)["x"], plain.batch(step)["x"])
  assert batched.calls == 5  # one read per batch
