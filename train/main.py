r"""Train, evaluate or export samples of a jaxface method.

    python train/main.py --config=configs/facefill.py --workdir=runs/facefill
    python train/main.py --config=configs/facefill.py:smoke --config.batch_size=8
    python train/main.py --config=... --workdir=runs/x --mode=evaluate [--step=N]

The workdir is the resume key: re-running the same command continues from
its newest checkpoint that restores. Without --workdir, runs/<config
name>[_<variant>] is used. A bad config value, file or folder stops the
command with one line on stderr and exit status 2.

Multi-host (or several processes on one machine): run the same command on
every process with --distributed; on a cluster JAX finds the coordinator
itself (Cloud TPU, SLURM, ...), elsewhere give it:

    python train/main.py --config=... --workdir=SHARED/run --distributed \
        --coordinator_address=HOST0:PORT --num_processes=N --process_id=I
"""

from __future__ import annotations

import pathlib

from absl import flags
from ml_collections import config_flags

from jaxface import cli, training

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Config file (file.py[:variant]).", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Run directory; the resume key. Default: runs/<config>."
)
_MODE = flags.DEFINE_enum("mode", "train", ["train", "evaluate", "export"], "What to do.")
_STEP = flags.DEFINE_integer(
  "step", None, "Checkpoint step for --mode=evaluate/export (default: the newest that restores)."
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed", False, "Call jax.distributed.initialize() first (multi-host / multi-process)."
)
_COORDINATOR = flags.DEFINE_string(
  "coordinator_address", None, "With --distributed: host:port of process 0 (default: detected)."
)
_NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes", None, "With --distributed: how many processes (default: detected)."
)
_PROCESS_ID = flags.DEFINE_integer(
  "process_id", None, "With --distributed: this process's index (default: detected)."
)
flags.mark_flags_as_required(["config"])


def default_workdir(config_argument: str) -> pathlib.Path:
  """runs/<config file stem>[_<variant>] for --config=path/file.py[:variant]."""
  path, _, variant = config_argument.partition(":")
  name = pathlib.Path(path).stem + (
    f"_{variant.replace(',', '_').replace('=', '-')}" if variant else ""
  )
  return pathlib.Path("runs") / name


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {argv[1:]}")
  if _DISTRIBUTED.value:
    import jax

    jax.distributed.initialize(
      coordinator_address=_COORDINATOR.value,
      num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value,
    )
  config = cli.config_value(_CONFIG)
  workdir = _WORKDIR.value or default_workdir(
    config_flags.get_config_filename(flags.FLAGS["config"])
  )
  workdir = pathlib.Path(workdir)
  if _MODE.value == "train":
    training.train_and_evaluate(config, workdir)
  elif _MODE.value == "evaluate":
    print(training.evaluate(config, workdir, _STEP.value))
  else:
    print(f"wrote {training.export_samples(config, workdir, _STEP.value)}")


if __name__ == "__main__":
  cli.run(main)
