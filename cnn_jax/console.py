"""A run's console lines, visible when the library is called from plain Python.

Runs report through absl logging at INFO (the model summary, the progress and epoch lines,
the final line). Under absl's app.run (launch.py, cnn_jax.reproduce) the flags are parsed and
absl's handler shows INFO, or what --verbosity says. Called from plain Python instead (a
notebook, a script without app.run), absl's flags are not parsed and its logger stays at
WARNING, so a run would be silent until it returned. The public entry points run inside
`progress_visible()` so that those lines reach stderr.
"""
from __future__ import annotations

import contextlib
import logging as python_logging

from absl import flags
from absl import logging


@contextlib.contextmanager
def progress_visible():
  """Shows absl's INFO lines for the duration of the block when nobody has set absl up (its
  flags are not parsed) and they would be hidden; restores absl's verbosity afterwards.

  Only the level changes, no handler is added, so no line can print twice: absl's own
  `log` gives the root logger Python's basicConfig handler (stderr, 'INFO:absl:' prefix)
  when it has none, and a caller's own handlers on the root logger receive the lines too.
  Under app.run (flags parsed) nothing changes: the user's --verbosity holds.
  """
  absl_logger = logging.get_absl_logger()
  if flags.FLAGS.is_parsed() or absl_logger.isEnabledFor(python_logging.INFO):
    yield
    return
  # Through the flag rather than the logger alone, so that sweep workers, which start at the
  # parent's verbosity (sweeps/process_pool.py), show their runs too. Setting the flag
  # object's value sets absl's logger level and leaves the flag marked as not given, so a
  # later app.run still raises it to INFO as it would have.
  verbosity = flags.FLAGS['verbosity']
  before = verbosity.value, absl_logger.level
  verbosity.value = logging.INFO
  try:
    yield
  finally:
    verbosity.value = before[0]
    absl_logger.setLevel(before[1])
