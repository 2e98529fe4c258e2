"""What the command-line entry points share: a user's mistake is one line, not a traceback.

    app.run(cli.clean_errors(main))

turns a cnn_jax.errors.UserError raised by `main` into `error: <message>` on stderr and exit
status 2 (the usual status for a bad command line); `--verbose` keeps the traceback. Any other
exception is a bug and propagates with its traceback.
"""
from __future__ import annotations

import functools
import sys

from absl import flags

from cnn_jax import errors

flags.DEFINE_bool('verbose', False, 'On a config or usage error, show the Python traceback '
                  'instead of the one-line message.')


def clean_errors(main):
  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except errors.UserError as error:
      if flags.FLAGS.verbose:
        raise
      print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
      sys.exit(2)
  return wrapped
