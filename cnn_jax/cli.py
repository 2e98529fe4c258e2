"""What the command-line entry points share: a user's mistake is one line, not a traceback.

    if __name__ == '__main__':
      cli.run(main)

is how every command starts (launch.py, cnn_jax.evaluate, .report, .reproduce,
.time_layers, the benchmarks). It turns a cnn_jax.errors.UserError raised by `main` into
`error: <message>` on stderr and exit status 2 (the usual status for a bad command line), and
so does `parse_flags` for a flag absl refuses (unknown, missing, out of bounds, of the wrong
type), an argument that is not a flag, a missing experiment file or a --config.X override
that names no field or has the wrong type; `--verbose` keeps the traceback. Any other
exception is a bug and propagates with its traceback. SIGTERM and SIGINT stop the command at
the next train step with a checkpoint (interrupts.py): one line, and exit status 143 or 130.
"""
from __future__ import annotations

import ast
import functools
import os
import shlex
import sys

from absl import app
from absl import flags

from cnn_jax import credentials
from cnn_jax import errors
from cnn_jax import interrupts
from cnn_jax.engine import distributed

flags.DEFINE_bool('verbose', False, 'On a config or usage error, show the Python traceback '
                  'instead of the one-line message.')


def run(main, argv: list[str] | None = None) -> None:
  """Parses the flags, then runs main(argv) with clean_errors: a command's one entry point."""
  app.run(clean_errors(main), argv=argv, flags_parser=parse_flags)


def clean_errors(main):
  @functools.wraps(main)
  def wrapped(argv):
    try:
      with interrupts.catching():
        return main(argv)
    except interrupts.Interrupted as stopped:
      # Every process of a distributed run stops at the same step; under SLURM their
      # output is one log, where process 0's line is enough.
      if 'jax' not in sys.modules or distributed.process_index() == 0:
        print(credentials.masked(stopped.message), file=sys.stderr)
      sys.exit(stopped.exit_status)
    except errors.UserError as error:
      if flags.FLAGS.verbose:
        raise
      print(credentials.masked(f'error: {" ".join(str(error).split())}'), file=sys.stderr)
      sys.exit(2)
    except Exception as error:  # pylint: disable=broad-except
      # A distributed run's failed collective is the other processes' news, not a bug here.
      failure = (None if flags.FLAGS.verbose or 'jax' not in sys.modules
                 or distributed.process_count() == 1
                 else distributed.collective_failure(error))
      if failure is None:
        raise
      print(credentials.masked(f'error: process {distributed.process_index()} stopped: '
                               f'{failure}'), file=sys.stderr)
      sys.exit(1)
  return wrapped


def parse_flags(argv):
  """absl's parsing, with a missing config file or a misspelt --config.X override as one
  line instead of ml_collections' traceback."""
  for arg in argv[1:]:
    if arg.startswith('--config='):
      spec = arg.partition('=')[2]
      if not os.path.isfile(spec.partition(':')[0]):
        _fail(f'--config={spec}: no such experiment file', argv)
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as error:
    _fail(_config_file_error(str(error)) or str(error), argv, error)
  except (KeyError, AttributeError) as error:  # ml_collections: an override names no field
    _fail(_no_field(error, argv), argv, error)
  except (TypeError, ValueError) as error:  # an override of the wrong type
    _fail(f'a --config.X override cannot apply: {error}', argv, error)
  if len(rest) > 1:  # no command takes positional arguments
    _fail(f'{shlex.join(rest[1:])}: not a flag; every argument is --name=value (--help lists '
          'them)', argv)
  return rest


def _config_file_error(text: str) -> str | None:
  """'--config=pool.py:variant=huge: config argument variant=...' for an experiment file
  whose get_config raised (ml_collections wraps its traceback into the flag's error): the
  exception's own line, the file named."""
  flag, found, traceback = text.partition(': Error whilst parsing config file')
  if not found:
    return None
  last = traceback.strip().splitlines()[-1]
  return f'{flag.removeprefix("flag ")}: {last.removeprefix("ValueError: ")}'


def _no_field(error: Exception, argv) -> str:
  """'--config.model.conv_featurs: 'conv_featurs' is not a config field; Did you mean ...'"""
  text = str(error.args[0]) if error.args else str(error)
  try:  # an AttributeError wraps the KeyError's message as its repr
    text = str(ast.literal_eval(text))
  except (ValueError, SyntaxError):
    pass
  missing, *hint = text.split('\n')
  missing = missing.strip("'\"")
  named = [a.partition('=')[0] for a in argv[1:]
           if a.startswith('--config.') and missing in a.partition('=')[0].split('.')]
  return (f'{named[0] if named else "--config.X"}: {missing!r} is not a config field'
          + (f'; {" ".join(hint)}' if hint else ''))


def _fail(message: str, argv, error: Exception | None = None) -> None:
  if error is not None and '--verbose' in argv:
    raise error
  print(credentials.masked(f'error: {" ".join(message.split())}'), file=sys.stderr)
  sys.exit(2)
