"""Timing helpers shared by the benchmarks: a matmul yardstick, machine facts, tables.

Absolute times drift on shared CPUs, so every benchmark also times a
1024 x 1024 float32 matmul in the same run and reports its figures as
multiples of it.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def block(tree):
  return jax.tree_util.tree_map(
    lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree
  )


def time_call(function: Callable, *args, repeats: int = 10, warmup: int = 2) -> float:
  """Median wall time of `function(*args)` in milliseconds, after `warmup` calls."""
  for _ in range(warmup):
    block(function(*args))
  samples = []
  for _ in range(repeats):
    start = time.perf_counter()
    block(function(*args))
    samples.append(time.perf_counter() - start)
  return 1e3 * float(np.median(samples))


def matmul_yardstick_ms() -> float:
  """Median time of a jitted 1024 x 1024 float32 matmul, ms."""
  a = jax.random.normal(jax.random.PRNGKey(0), (1024, 1024), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  return time_call(lambda: matmul(a), repeats=20, warmup=3)


#: GFLOP of the yardstick, a 1024 x 1024 float32 matmul (2 n^3).
MATMUL_GFLOP = 2.15


def xla_flops(function: Callable, *args) -> float:
  """XLA's FLOP count of `function` jitted on `args` (nan when the backend gives none)."""
  analysis = jax.jit(function).lower(*args).compile().cost_analysis()
  if isinstance(analysis, list):  # older jax returned one dict per computation
    analysis = analysis[0]
  return float(analysis.get("flops", float("nan")))


def print_flop_limits(rows: list[dict], yardstick_ms: float) -> None:
  """For rows with "flops": measured matmul-equivalents against the FLOP limit (TARGETS.md)."""
  print("\nFLOP limits (XLA's FLOP count / 2.15 GFLOP) against the measured matmul-equivalents:")
  for row in rows:
    limit = row["flops"] / (MATMUL_GFLOP * 1e9)
    measured = row["ms"] / yardstick_ms
    print(
      f"  {row['what']}: {measured:.2f} measured, {limit:.2f} limit, ratio {measured / limit:.2f}"
    )


def machine_line() -> str:
  devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
  return (
    f"{platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
    f"jax {jax.__version__} | devices: {devices}"
  )


def print_table(title: str, rows: list[dict], yardstick_ms: float) -> None:
  """Prints rows of {"what": ..., "setting": ..., "ms": ...} with a matmul-multiples column."""
  print(f"\n{title}")
  print(machine_line())
  print(f"1024x1024 float32 matmul: {yardstick_ms:.2f} ms\n")
  header = f"| {'what':<44} | {'setting':<34} | {'ms':>9} | {'x matmul':>8} |"
  print(header)
  print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
  for row in rows:
    print(
      f"| {row['what']:<44} | {row['setting']:<34} | {row['ms']:>9.2f} | "
      f"{row['ms'] / yardstick_ms:>8.2f} |"
    )
