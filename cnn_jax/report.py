"""Writes the report of a run or of a sweep, from what it left on disk.

    python -m cnn_jax.report --workdir=runs/pool-1a2b3c4d     # a run: report.md + pictures/
    python -m cnn_jax.report --workdir=runs/pool-sweep-...    # a sweep: its table, a plot of
                                                              # test error by axis (a grid)
                                                              # or Optuna's pictures (a
                                                              # search), each trial's report

A run's pictures are drawn again from its checkpoint (reports/run_report.py); a sweep's
report reads its sweep.csv (reports/sweep_report.py).
"""
from __future__ import annotations

import os

from absl import flags

from cnn_jax import startup
from cnn_jax import cli

if __name__ == '__main__':
  startup.before_jax()  # before JAX loads; see startup.py

flags.DEFINE_string('workdir', None, 'A run directory, or a sweep directory (with sweep.csv).')
flags.DEFINE_bool('trial_reports', True, "For a sweep, also write each trial's report.")
flags.DEFINE_string('storage', '', "For a sweep whose study is in a database: its URL (as "
                    "given to launch.py's --storage).")
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv  # cli.parse_flags refuses arguments that are not flags
  # pylint: disable=g-import-not-at-top  (JAX only after the allocator)
  from cnn_jax.errors import UserError
  from cnn_jax.reports import run_report
  from cnn_jax.reports import sweep_report
  if not os.path.isdir(FLAGS.workdir):
    raise UserError(f'--workdir={FLAGS.workdir} is not a directory')
  if os.path.exists(os.path.join(FLAGS.workdir, sweep_report.TABLE)):
    path = sweep_report.write(FLAGS.workdir, FLAGS.trial_reports, FLAGS.storage)
  else:
    path = run_report.write(FLAGS.workdir)
  print(path)


if __name__ == '__main__':
  cli.run(main)
