"""Shared fixtures: the procedural model, and ICT-FaceKit when its files are around.

ICT-FaceKit is found through $JAXFACE_DATA, falling back to ../shared/data
beside the repository (the project's test data, never committed); tests
that need it skip with the reason when neither exists.
"""

from __future__ import annotations

import os

from tests.helpers import TEST_XLA_FLAGS

# Must be set before jax is imported: four CPU devices for the sharding tests, and XLA:CPU's
# LLVM backend at -O0. The tests' arrays are tiny, so their time is mostly compiling (the facefill
# smoke run: 150 s at the default level, 80 s at -O0); the programs and their semantics are the
# same, only the machine code is less optimised. Benchmarks and real runs keep the default.
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "")
  + " "
  + TEST_XLA_FLAGS
  + " --xla_force_host_platform_device_count=4"
)

import pathlib
import shutil
import tempfile

import numpy as np
import pytest

# One persistent XLA compilation cache for the session, shared by the xdist workers and the
# commands the tests run in subprocesses (they inherit the environment): the same program
# (a method's step, its evaluation) is then compiled once, not once per test or process. The
# controller makes it before the workers start and removes it at the end; a cache a user set is
# left alone. Cached executables are the compiled programs themselves: results are unchanged.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxface-tests-xla-")
  os.environ["JAXFACE_TESTS_OWN_XLA_CACHE"] = "1"


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  controller = "PYTEST_XDIST_WORKER" not in os.environ
  if controller and os.environ.get("JAXFACE_TESTS_OWN_XLA_CACHE"):
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


REPO = pathlib.Path(__file__).resolve().parents[1]
FALLBACK_DATA = REPO.parent / "shared" / "data"


def shared_data_dir() -> pathlib.Path | None:
  value = os.environ.get("JAXFACE_DATA")
  if value:
    return pathlib.Path(value)
  return FALLBACK_DATA if FALLBACK_DATA.exists() else None


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  root = shared_data_dir()
  if root is None or not (root / "ict-facekit").exists():
    pytest.skip("ICT-FaceKit test data not found: set JAXFACE_DATA or provide ../shared/data")
  return root


def _ict_path(data_dir: pathlib.Path, name: str) -> pathlib.Path:
  path = data_dir / "ict-facekit" / name
  if not path.exists():
    pytest.skip(f"{path} not found")
  return path


@pytest.fixture(scope="session")
def ict_npz(data_dir) -> pathlib.Path:
  return _ict_path(data_dir, "ict_face_area.npz")


@pytest.fixture(scope="session")
def ict_raw(data_dir) -> pathlib.Path:
  return _ict_path(data_dir, "raw")


@pytest.fixture(scope="session")
def ict_arrays(ict_npz) -> dict[str, np.ndarray]:
  with np.load(ict_npz) as data:
    return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def ict_model(ict_npz):
  from jaxface.morphable import load

  return load(ict_npz)


@pytest.fixture(scope="session")
def procedural():
  from jaxface.morphable import load

  return load("procedural")
