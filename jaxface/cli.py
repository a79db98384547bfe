"""Command-line plumbing shared by every jaxface command: user errors as one line, a quiet console.

`run(main)` is `absl.app.run(main)` with two changes. A `jaxface.errors.UserError`
(or a flag that does not parse, e.g. a config typo) ends the command with one
line on stderr, "error: <what is wrong>", and exit status 2; any other
exception is a bug and keeps its traceback. And the console shows jaxface's
own lines (metrics, checkpoints, evaluation tables, the progress bar) while
third-party INFO logging (orbax, tfds, absl, jax) is lowered to WARNING;
`--library_logs` restores it. `run_plain(main, argv)` does the same for the
commands that parse their own arguments.

Library modules log through `logging.getLogger(__name__)` (names under
"jaxface"), never through absl's logger, which the libraries share.
"""

from __future__ import annotations

import functools
import logging
import pathlib
import sys
from collections.abc import Callable, Sequence

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from jaxface.errors import USER_ERROR_EXIT_CODE, OutputExistsError, UserError


def check_outputs(output: pathlib.Path, names: Sequence[str], overwrite: bool) -> None:
  """A command's --output folder: OutputExistsError (one line) when it is a file, or when one of
  the files it would write exists and `overwrite` is off. Checked before any work."""
  output = pathlib.Path(output)
  if output.exists() and not output.is_dir():
    raise OutputExistsError(f"--output {output} is a file, not a folder")
  for name in names:
    if (output / name).exists() and not overwrite:
      raise OutputExistsError(f"{output / name} exists: pass --overwrite to replace it")


def configure_logging(library_logs: bool = False) -> None:
  """jaxface's INFO lines on; other libraries' INFO lines off unless `library_logs`."""
  absl_logging.set_verbosity(absl_logging.INFO if library_logs else absl_logging.WARNING)
  logging.getLogger("jaxface").setLevel(logging.INFO)


def one_line(error: BaseException) -> str:
  """The error's message on one line (its own newlines folded into "; ")."""
  text = str(error).strip() or type(error).__name__
  return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def fail(message: str) -> None:
  """Prints `error: message` as one line on stderr and exits with status 2."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(USER_ERROR_EXIT_CODE)


def exit_on_user_error(main: Callable) -> Callable:
  """Wraps a command's main: a UserError becomes `fail(its message)`."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except UserError as error:
      fail(one_line(error))

  return wrapped


def config_value(holder: flags.FlagHolder):
  """The value of a `config_flags` flag; one line naming the file when it did not load (the
  library defers that error to the first access)."""
  value = holder.value
  try:
    if value is not None:
      value.keys()  # a config that failed to load raises on any access
  except OSError as error:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    filename = config_flags.get_config_filename(flags.FLAGS[holder.name])
    fail(f"--{holder.name}={filename} did not load ({lines[-1] if lines else error})")
  return value


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing; what goes wrong in it is the user's (a flag, a config file or override)."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as error:  # ml_collections: an override of a missing field
    field = str(error).strip("\"' ")
    fail(f"a --config override names the field {field!r}, which the config does not have")
  except (flags.Error, ValueError, TypeError, OSError) as error:  # OSError: a config file
    fail(one_line(error))


def _define_library_logs() -> None:
  if "library_logs" not in flags.FLAGS:
    flags.DEFINE_bool(
      "library_logs", False, "Show the INFO logging of orbax, tfds, absl and jax (off by default)."
    )


def run(main: Callable[[list[str]], None]) -> None:
  """absl's app.run with one-line user errors (exit 2) and a quiet console (see the module)."""
  _define_library_logs()

  def configured(argv):
    configure_logging(flags.FLAGS.library_logs)
    return exit_on_user_error(main)(argv)

  app.run(configured, flags_parser=_parse_flags)


def run_plain(main: Callable[[Sequence[str]], None], argv: Sequence[str] | None = None) -> None:
  """For commands that read sys.argv themselves: one-line user errors, quiet libraries."""
  configure_logging(library_logs=False)
  exit_on_user_error(main)(list(sys.argv[1:] if argv is None else argv))


def run_report(
  report: Callable[[list[str]], str], usage: str, argv: Sequence[str] | None = None
) -> None:
  """`run_plain` for a report command: `usage` without arguments or with -h, else the report."""

  def main(arguments: Sequence[str]) -> None:
    if not arguments or arguments[0] in ("-h", "--help"):
      print(usage)
      return
    text = report(list(arguments))
    print(text, end="" if text.endswith("\n") else "\n")

  run_plain(main, argv)
