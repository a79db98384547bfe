r"""Train, evaluate or export samples of a jaxface method.

    python train/main.py --config=configs/facefill.py --workdir=runs/facefill
    python train/main.py --config=configs/facefill.py:smoke --config.batch_size=8
    python train/main.py --config=... --workdir=runs/x --mode=evaluate [--step=N]

The workdir is the resume key: re-running the same command continues from
its latest checkpoint. Without --workdir, runs/<config name>[_<variant>] is
used. Multi-host: pass --distributed on every host (jax.distributed).
"""

from __future__ import annotations

import pathlib

from absl import app, flags, logging
from ml_collections import config_flags

from jaxface import training

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Config file (file.py[:variant]).", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Run directory; the resume key. Default: runs/<config>."
)
_MODE = flags.DEFINE_enum("mode", "train", ["train", "evaluate", "export"], "What to do.")
_STEP = flags.DEFINE_integer(
  "step", None, "Checkpoint step for --mode=evaluate/export (default: latest)."
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed", False, "Call jax.distributed.initialize() (multi-host)."
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
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _DISTRIBUTED.value:
    import jax

    jax.distributed.initialize()
  config = _CONFIG.value
  workdir = _WORKDIR.value or default_workdir(
    config_flags.get_config_filename(flags.FLAGS["config"])
  )
  workdir = pathlib.Path(workdir)
  logging.info("workdir: %s", workdir)
  if _MODE.value == "train":
    training.train_and_evaluate(config, workdir)
  elif _MODE.value == "evaluate":
    print(training.evaluate(config, workdir, _STEP.value))
  else:
    print(f"wrote {training.export_samples(config, workdir, _STEP.value)}")


if __name__ == "__main__":
  app.run(main)
