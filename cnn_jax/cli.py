"""What the command-line entry points share: a user's mistake is one line, not a traceback.

    app.run(cli.clean_errors(main))

turns a cnn_jax.errors.UserError raised by `main` into `error: <message>` on stderr and exit
status 2 (the usual status for a bad command line); `--verbose` keeps the traceback. Any other
exception is a bug and propagates with its traceback. SIGTERM and SIGINT stop the command at
the next train step with a checkpoint (interrupts.py): one line, and exit status 143 or 130.
"""
from __future__ import annotations

import functools
import sys

from absl import flags

from cnn_jax import errors
from cnn_jax import interrupts

flags.DEFINE_bool('verbose', False, 'On a config or usage error, show the Python traceback '
                  'instead of the one-line message.')


def clean_errors(main):
  @functools.wraps(main)
  def wrapped(argv):
    try:
      with interrupts.catching():
        return main(argv)
    except interrupts.Interrupted as stopped:
      print(stopped.message, file=sys.stderr)
      sys.exit(stopped.exit_status)
    except errors.UserError as error:
      if flags.FLAGS.verbose:
        raise
      print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
      sys.exit(2)
  return wrapped
