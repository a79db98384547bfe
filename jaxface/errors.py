"""Errors that are the user's to fix, not bugs: a config value, a file, a run folder.

Every jaxface command (`train/main.py`, the photo, report and metrics
commands) prints a `UserError` as one line on stderr and exits with status 2
(`jaxface.cli`); any other exception is a bug and keeps its traceback. Each
class also derives from the built-in exception a caller would expect
(`ValueError`, `FileNotFoundError`), so `except ValueError` keeps working.
"""

from __future__ import annotations

#: Exit status of a command stopped by a UserError (absl's and argparse's usage-error status).
USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
  """Something the user gave is wrong; the message names the field, file or run."""


class ConfigError(UserError, ValueError):
  """An invalid config value or command-line flag (the message names it, e.g. config.batch_size)."""


class InputFileError(UserError, ValueError):
  """A file that exists but cannot be used: unreadable, malformed, or of the wrong size."""


class NotFoundError(UserError, FileNotFoundError):
  """A file, folder, run or checkpoint that does not exist."""


class OutputExistsError(UserError, FileExistsError):
  """An output file that exists and is not to be overwritten (nothing was written)."""


class CheckpointError(UserError, RuntimeError):
  """No checkpoint of a run could be restored; the message lists what was tried."""
