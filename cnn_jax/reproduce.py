"""Runs every tutorial experiment over several seeds and writes docs/REPRODUCTION.md.

    TFDS_DATA_DIR=../shared/data/tfds python -m cnn_jax.reproduce --seeds=5

Runs live in --workdir (default runs/reproduction/<row>/seed<k>); an interrupted one
resumes from its last checkpoint. Each finished run's results.json is copied to the archive
(docs/reproduction_results/<row>/seed<k>.json, committed with the table), the table is built
from the archive alone, and a run already archived is not run again: the same command
continues where it stopped, on this machine or after a fresh clone. --report_only rewrites
the table from the archive. The rows, the archive and the report: reports/reproduction.py.
"""
from __future__ import annotations

import os
import sys

from cnn_jax import startup

if __name__ == '__main__':
  startup.before_jax()  # before JAX loads; see startup.py

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags

from cnn_jax import atomic_files
from cnn_jax import cli
from cnn_jax.config import files
from cnn_jax.errors import InputError
from cnn_jax.reports import reproduction

ROWS = reproduction.ROWS
flags.DEFINE_string('workdir', 'runs/reproduction', 'Where the runs go.')
flags.DEFINE_integer('seeds', 5, 'Seeds per tutorial model (0 .. seeds-1).', lower_bound=1)
flags.DEFINE_list('only', [], f'Row keys to run (default all): {", ".join(r.key for r in ROWS)}.')
flags.DEFINE_string('archive', 'docs/reproduction_results',
                    'Finished runs\' results.json, one per row and seed; the table\'s source.')
flags.DEFINE_string('output', 'docs/REPRODUCTION.md', 'The table.')
flags.DEFINE_string('remark', '', 'A sentence for the report on how it was run (e.g. '
                    'whether other work shared the machine while timings were taken).')
flags.DEFINE_bool('allow_fewer', False, 'Replace --output even where it reports more runs '
                  'than the archive now gives (by default that is refused: a mistyped '
                  '--archive or a smaller --seeds must not wipe the table).')
flags.DEFINE_bool('report_only', False, 'Write the table from existing runs; train nothing. '
                  "Without --remark it keeps the earlier report's machine line (where the "
                  'runs ran).')
FLAGS = flags.FLAGS


def main(argv):
  del argv  # cli.parse_flags refuses arguments that are not flags
  unknown = set(FLAGS.only) - {r.key for r in ROWS}
  if unknown:
    raise InputError(f'--only: unknown rows {sorted(unknown)}; '
                         f'allowed: {", ".join(r.key for r in ROWS)}')
  if FLAGS.report_only and not os.path.isdir(FLAGS.archive):
    raise InputError(f'--archive={FLAGS.archive}: no such directory (the archived runs the '
                     'table is made from)')
  if not FLAGS.report_only:
    for row in ROWS:
      if not FLAGS.only or row.key in FLAGS.only:
        reproduction.run_row(row, FLAGS.seeds, FLAGS.workdir, FLAGS.archive)
  kept = (reproduction.recorded_machine(FLAGS.output)
          if FLAGS.report_only and not FLAGS.remark else None)
  figures = reproduction.collect(FLAGS.archive, FLAGS.seeds)
  if not FLAGS.allow_fewer:
    atomic_files.refuse_losing(
        FLAGS.output, reproduction.reported_runs(FLAGS.output), reproduction.runs_of(figures),
        f'--archive={FLAGS.archive} with --seeds={FLAGS.seeds} gives fewer',
        'pass --allow_fewer')
  report = reproduction.format_report(
      figures, FLAGS.seeds,
      kept or reproduction.machine_description(), '' if kept else FLAGS.remark)
  atomic_files.make_dirs(os.path.dirname(FLAGS.output) or '.')
  atomic_files.write_text(FLAGS.output, report)
  print(report)


if __name__ == '__main__':
  sys.path.insert(0, files.REPO_ROOT)
  cli.run(main)
