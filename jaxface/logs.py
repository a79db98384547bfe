"""Logging helpers of the library: hiding another library's expected, uninformative warnings.

orbax and tfds log through absl's shared logger; some of their warnings are
the expected result of how jaxface uses them (a read-only checkpoint
manager, a tfds builder config named by its settings) and would otherwise
print on every run. `absl_quiet()` lowers absl's logger to ERROR around
such a call only. jaxface's own modules log through
`logging.getLogger(__name__)`.
"""

from __future__ import annotations

import contextlib
import logging

from absl import logging as absl_logging


@contextlib.contextmanager
def absl_quiet():
  """Within the block, absl's logger (orbax, tfds) reports errors only."""
  absl_logger = absl_logging.get_absl_logger()
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    absl_logger.setLevel(level)
