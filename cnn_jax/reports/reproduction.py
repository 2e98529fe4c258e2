"""The reproduction of the tutorials: the rows and the figures the tutorials report, running
a row over seeds into the archive of finished runs (docs/reproduction_results, results.json
of any schema version), the verdicts, and the report. The command: cnn_jax/reproduce.py.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import statistics

from absl import logging

from cnn_jax import allocator
from cnn_jax import atomic_files
from cnn_jax import machine
from cnn_jax.config import files
from cnn_jax.engine import metrics
from cnn_jax.engine import results


@dataclasses.dataclass(frozen=True)
class Row:
  """One tutorial model: its experiment, and the error rates (%) the tutorial reports."""
  key: str
  model: str
  experiment: str               # 'experiments/x.py' or 'experiments/x.py:arg'
  reported: tuple[float, ...]   # error %, one per run the tutorial reports; () if none
  reported_text: str
  max_seeds: int = 0            # 0: as many as --seeds; else at most this many (long runs)
  reported_per_class: str = ''  # what the tutorial says of its per-class accuracy, if any


# Cheapest first, so that an interrupted reproduction has whole rows early.
ROWS = (
    Row('softmax', 'T5 softmax regression', 'experiments/softmax.py', (8.13,),
        '8.13 (91.87% acc.)'),
    Row('cntk_conv', 'T1 CNTK conv', 'experiments/conv.py', (1.57,), '1.57'),
    Row('cntk_pool_slides', 'T2 slides variant', 'experiments/pool.py:variant=slides', (1.0,),
        'about 1'),
    Row('cntk_pool', 'T2 CNTK pool', 'experiments/pool.py', (1.05,), '1.05'),
    Row('tf_deep_cnn', 'T5 deep CNN, 1,100 steps', 'experiments/tf_deep_cnn.py', (3.27,),
        '3.27 (96.73% acc.)'),
    Row('lenet_small', 'T4 lecture LeNet', 'experiments/lenet_small.py', (1.17,),
        '1.17 (98.83% acc.)'),
    Row('keras_cnn', 'T3 Keras blog CNN', 'experiments/keras_cnn.py', (1.29, 1.22),
        '1.29, 1.22 (98.71, 98.78% acc.)',
        reported_per_class='the post\'s PyTorch version tabulates per-class accuracy; its '
        'worst digits are 7 and 9, at 97%'),
    Row('tf_deep_cnn_full', 'T5 deep CNN, 20,000 steps', 'experiments/tf_deep_cnn.py:variant=full',
        (), 'none given', max_seeds=1),
)

# Evidence-backed explanations for rows that miss the criterion, keyed by Row.key. Empty
# until a full reproduction shows a miss; the report flags any unexplained miss loudly.
EXPLANATIONS: dict[str, str] = {
    'cntk_pool_slides': (
        'the slides give a rounded "about 1%" with no seeds, length or test protocol, so it is '
        'not a figure we can test directly. What we can test: the same code, recipe and seeds '
        'reproduce T2\'s exact figure (T2 row), and on every one of the five seeds the slides '
        'variant is worse than T2 (seeds 0-4: 1.49/1.15, 1.39/1.05, 1.31/1.23, 1.36/1.19, '
        '1.47/0.93%, i.e. 0.08 to 0.54 points, 0.29 on average). Its second conv at stride 2 '
        'followed by 2/2 pooling leaves 3x3x16 = 144 features for the dense layer against '
        'T2\'s 4x4x16 = 256 (4,874 against 5,994 parameters), so the variant is worse by '
        'design; "about 1%" would need a recipe the slides do not state.'),
    'tf_deep_cnn': (
        'seed-to-seed spread after a single pass (1,100 steps of 50 = 55,000 images), not a '
        'difference in the recipe. Five seeds put 3.27% just outside mean - 2 std (3.54 ± '
        '0.13%); ten seeds (2026-11-23, this machine) give 3.47 ± 0.21% (min 3.12, max 3.73; '
        'seeds 0-9: 3.73, 3.59, 3.47, 3.39, 3.52, 3.13, 3.50, 3.52, 3.71, 3.12%): the reported '
        '3.27% lies within mean ± 2 std and 2 of the 10 seeds beat it. Details checked against '
        'TF1: tf.truncated_normal(stddev=0.1) draws the same distribution as our initializer '
        '(std of the untruncated normal, cut at 2 std); Adam uses TF1\'s epsilon 1e-8 (its '
        'placement differs from optax by a term negligible at these gradient sizes); dropout '
        'keeps 0.5; the validation split is the first 5,000 training images (TFDS order, '
        'where the notebook used the IDX order). The 20,000-step run reaches 0.81%. Seeds 5-9 '
        'are archived beside 0-4 (docs/reproduction_results/tf_deep_cnn/); re-run them with '
        '`python -m cnn_jax.reproduce --only=tf_deep_cnn --seeds=10`.'),
    'softmax': (
        'with learning rate 0.5 the final iterate of 1,000 steps is noisy and depends on how '
        'many examples the steps see. Measured on this machine (2026-11-22): minibatch 50 as '
        'TUTORIALS.md specifies, 20 seeds: 8.94 ± 0.52% (best 8.25%; none reaches 8.13%); the '
        'same with minibatch 100, the recipe of TensorFlow\'s beginners\' tutorial for this '
        'model, 10 seeds: 8.29 ± 0.20% (min 7.96%), which matches the reported 8.13%; minibatch '
        '50 for 2,000 steps, 10 seeds: 8.50 ± 0.38%. The reported figure is most likely a '
        'batch-100 run or a lucky draw; we keep the specified batch of 50. Re-run the evidence: '
        '`python -m cnn_jax.reproduce --only=softmax --seeds=20 --workdir=/tmp/w '
        '--archive=/tmp/a --output=/tmp/t.md` and `python launch.py '
        '--config=experiments/softmax.py --config.train.batch_size=100 --config.seed=K`.'),
}

def seeds_for(row: Row, seeds: int) -> range:
  return range(min(seeds, row.max_seeds) if row.max_seeds else seeds)


def archived_path(archive: str, row: Row, seed: int) -> str:
  return os.path.join(archive, row.key, f'seed{seed}.json')


def read_archived(archive: str, row: Row, seed: int) -> dict | None:
  """The archived results.json (any schema version, read as the current one), or None."""
  return results.read_file(archived_path(archive, row, seed))


def run_row(row: Row, seeds: int, workdir: str, archive: str) -> None:
  from cnn_jax import train  # pylint: disable=g-import-not-at-top  (JAX after the allocator)
  for seed in seeds_for(row, seeds):
    done = read_archived(archive, row, seed)
    if done is not None:
      logging.info('%s seed %d: archived already (%s test error)', row.key, seed,
                   metrics.show(metrics.ERROR, results.final_metric(done, 'test', metrics.ERROR)))
      continue
    config = files.load_config(row.experiment)
    config.seed = seed
    run_dir = os.path.join(workdir, row.key, f'seed{seed}')
    files.record_origin(run_dir, row.experiment)  # for the run's report
    outcome = train.train_and_evaluate(config, run_dir)
    if outcome['status'] != 'ok':
      raise RuntimeError(f'{row.key} seed {seed} ended with status {outcome["status"]}: '
                         f'{outcome["message"]}')
    atomic_files.make_dirs(os.path.dirname(archived_path(archive, row, seed)))
    shutil.copyfile(os.path.join(run_dir, results.FILENAME), archived_path(archive, row, seed))


@dataclasses.dataclass
class RowFigures:
  row: Row
  errors: list[float]          # test error %, one per finished seed
  params: int | None
  seconds: list[float]         # wall seconds per run
  confusions: list = dataclasses.field(default_factory=list)  # test confusion counts, per
                                                               # seed whose record has them

  @property
  def mean(self):
    return statistics.fmean(self.errors)

  @property
  def std(self):
    return statistics.stdev(self.errors) if len(self.errors) > 1 else 0.0

  def verdict(self) -> str:
    if not self.errors:
      return 'not run yet'
    if not self.row.reported:
      return 'no figure reported by the tutorial'
    verdicts = []
    for reported in self.row.reported:
      if abs(reported - self.mean) <= 2 * self.std:
        verdicts.append(f'{reported:.2f} within mean ± 2 std')
      elif self.mean < reported:
        verdicts.append(f'ours better than {reported:.2f}')
      else:
        verdicts.append(f'MISSED: {reported:.2f} is below our mean - 2 std')
    return '; '.join(verdicts)


def collect(archive: str, seeds: int) -> list[RowFigures]:
  figures = []
  for row in ROWS:
    errors, seconds, params, confusions = [], [], None, []
    for seed in seeds_for(row, seeds):
      done = read_archived(archive, row, seed)
      if done is not None:
        errors.append(100 * results.final_metric(done, 'test', metrics.ERROR))
        seconds.append(done['wall_seconds'])
        params = done['params']
        confusion = results.final_metric(done, 'test', 'confusion')
        if confusion is not None:  # results of schema version 1 have none
          confusions.append(confusion)
    figures.append(RowFigures(row, errors, params, seconds, confusions))
  return figures


def runs_of(figures: list[RowFigures]) -> list[str]:
  """'<config> run k' for the k-th finished run of each row: what a table reports."""
  return [f'{f.row.experiment} run {k + 1}' for f in figures for k in range(len(f.errors))]


def reported_runs(report_path: str) -> list[str]:
  """runs_of for the table an earlier report printed (its config and seeds columns)."""
  if not os.path.exists(report_path):
    return []
  with open(report_path) as f:
    lines = f.read().splitlines()
  runs = []
  for line in lines:
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) == 10 and cells[1].startswith('`') and cells[7].isdigit():
      runs += [f'{cells[1].strip("`")} run {k + 1}' for k in range(int(cells[7]))]
  return runs


def machine_description() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  malloc = allocator.name()
  return (f'{machine.cpu_model()} ({len(os.sched_getaffinity(0))} cores visible), '
          f'backend {jax.default_backend()}, '
          f'jax {jax.__version__}, Python {platform.python_version()}, {malloc}')


def recorded_machine(report_path: str) -> str | None:
  """The machine and remark an earlier report gives its figures (its 'Machine: ...' line,
  without the line's final period), or None: a report rewritten from the archive alone
  (--report_only) keeps where its runs ran, not where the rewrite ran."""
  if not os.path.exists(report_path):
    return None
  with open(report_path) as f:
    for line in f:
      if line.startswith('Machine: '):
        return line.strip().removeprefix('Machine: ').removesuffix('.')
  return None


def format_report(figures: list[RowFigures], seeds: int, machine: str, remark: str = '') -> str:
  lines = [
      '# Reproducing the tutorials',
      '',
      'Generated by `TFDS_DATA_DIR=../shared/data/tfds python -m cnn_jax.reproduce '
      f'--seeds={seeds}`; every figure below comes from a run\'s `results.json`, archived '
      'in `docs/reproduction_results/<row>/seed<k>.json`.',
      '',
      f'Machine: {machine}.' + (f' {remark}' if remark else ''),
      '',
      'Test error rates in %, over seeds 0, 1, ... of each experiment (the seed sets '
      'initialisation, dropout and shuffling; data splits use split_seed 0). Test sets: all '
      '10,000 test images, except T3, scored on the 8,000 left after its stratified 2,000-image '
      'validation split, as in the post. "seconds per run" is the mean wall time of one run '
      '(data loading, compilation, per-epoch evaluation included).',
      '',
      '| model | config | reported error % | ours mean % | ours std % | ours min % | '
      'ours max % | seeds | params | seconds per run |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for f in figures:
    if f.errors:
      stats = (f'{f.mean:.2f} | {f.std:.2f} | {min(f.errors):.2f} | {max(f.errors):.2f} | '
               f'{len(f.errors)} | {f.params:,} | {statistics.fmean(f.seconds):.0f}')
    else:
      stats = '- | - | - | - | 0 | - | -'
    lines.append(f'| {f.row.model} | `{f.row.experiment}` | {f.row.reported_text} | {stats} |')
  lines += ['', '## Against the tutorials', '',
            'Criterion: the reported figure lies within our mean ± 2 std, or ours is better.', '']
  for f in figures:
    verdict = f.verdict()
    lines.append(f'- {f.row.model}: {verdict}.')
    if 'MISSED' in verdict:
      lines.append(f'  - Why: {EXPLANATIONS.get(f.row.key, "NOT YET EXPLAINED")}')
  lines += per_class_section(figures)
  if any(f.row.max_seeds and f.row.max_seeds < seeds for f in figures):
    lines += ['', 'Rows with fewer seeds are long runs, capped by design '
              '(Row.max_seeds in cnn_jax/reproduce.py).']
  return '\n'.join(lines) + '\n'



def per_class_section(figures: list[RowFigures]) -> list[str]:
  """Per-class test accuracy (%) of the rows whose archived runs hold confusion counts: mean,
  lowest and highest over the seeds, and the hardest digits, next to what the tutorial says."""
  rows = [f for f in figures if f.confusions and f.row.reported_per_class]
  if not rows:
    return []
  lines = ['', '## Per-class test accuracy', '']
  for f in rows:
    per_seed = [[100 * a for a in metrics.per_class_accuracy(c)] for c in f.confusions]
    by_class = list(zip(*per_seed))
    means = [statistics.fmean(values) for values in by_class]
    hardest = sorted(range(len(means)), key=lambda c: means[c])[:3]
    lines += [f'{f.row.model} (`{f.row.experiment}`), test split, over {len(per_seed)} '
              f'seeds: accuracy % per true digit (mean, lowest and highest seed).', '',
              '| digit | ' + ' | '.join(str(c) for c in range(len(means))) + ' |',
              '| --- ' * (len(means) + 1) + '|',
              '| mean | ' + ' | '.join(f'{m:.2f}' for m in means) + ' |',
              '| lowest | ' + ' | '.join(f'{min(v):.2f}' for v in by_class) + ' |',
              '| highest | ' + ' | '.join(f'{max(v):.2f}' for v in by_class) + ' |', '',
              'Hardest here: ' + ', '.join(f'{c} ({means[c]:.2f}%)' for c in hardest)
              + f'. The tutorial: {f.row.reported_per_class}.', '']
  return lines
