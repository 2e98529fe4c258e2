"""What a search buys over a grid, on the same wall-clock budget: the best validation error
reached by a grid, random search, TPE, TPE with median pruning and population-based training,
each through launch.py on this machine (the searches with --workers=2; the population is one
vmapped program in one process); then trials per hour with 1 and 2 workers.

    TFDS_DATA_DIR=../shared/data/tfds python benchmarks/search.py [--seconds=300] [--epochs=2]

The question is experiments/pool.py's search (T2 with SGD and momentum; learning rate,
momentum, batch size and filter counts; chosen on a 10,000-image validation split), on a
short recipe of --epochs epochs per trial. The grid is the researcher's 4 x 4 x 4 x 4 over
the same ranges (learning rate 0.01, 0.03, 0.1, 0.3 varying slowest; momentum 0, 0.3, 0.6,
0.9; batch 32 to 256; filters 4/8 to 32/64), taken in that order. Each strategy's command is
stopped at the budget (SIGTERM to its process group); what counts is what had finished by
then. PBT (experiments/pool.py:sweep=pbt) explores the learning rate and momentum over the
same ranges with --population members of --population_epochs (default --epochs) epochs
each, ranked every half epoch; batch size and filters change the program, so it keeps T2's
(64, 8/16). Its members finish together, so it runs to its end and its row shows the time it
took: fewer epochs per member fit it into the budget. Each row also
gives the epochs trained in its time (a vmapped population trades the second worker for
one program over all members). Trials per hour: the grid's first --rate_trials trials (the
same work for both) run to the end with 1 and with 2 workers, whole commands timed.
"""
import glob
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

from cnn_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

flags.DEFINE_float('seconds', 300, 'Wall-clock budget of each strategy.')
flags.DEFINE_float('epochs', 2.0, 'Epochs per trial (the short recipe).')
flags.DEFINE_integer('workers', 2, 'Workers of each strategy.')
flags.DEFINE_integer('rate_trials', 6, 'Trials for the trials-per-hour figure.')
flags.DEFINE_list('strategies', ['grid', 'random', 'tpe', 'tpe_pruned', 'pbt'],
                  'What to compare.')
flags.DEFINE_integer('population', 8, "PBT's members.")
flags.DEFINE_float('population_epochs', 0, "Epochs of each PBT member (0: --epochs); fewer "
                   'than a trial\'s fit the population into --seconds.')
flags.DEFINE_string('out', '', 'Directory to keep the sweeps in (default: a temporary one).')
FLAGS = flags.FLAGS

EXPERIMENT = '''
"""benchmarks/search.py's variants of experiments/pool.py's search."""
import dataclasses
from experiments import pool

def get_config(arg=None):
  config = pool.get_config('sweep=search')
  config.train.num_epochs = {population_epochs} if arg == 'pbt' else {epochs}
  config.train.pictures = 'none'  # the strategies compared on training alone
  return config

GRID = [('optimizer.learning_rate', [0.01, 0.03, 0.1, 0.3]),
        ('optimizer.momentum', [0.0, 0.3, 0.6, 0.9]),
        ('train.batch_size', [32, 64, 128, 256]),
        ('model.conv_features', [(4, 8), (8, 16), (16, 32), (32, 64)])]

def get_sweep(h, arg=None):
  if arg == 'pbt':
    return dataclasses.replace(pool.get_sweep(h, 'sweep=pbt'), population={population})
  if arg in ('grid', 'rate'):
    grid = h.product([h.sweep(key, values) for key, values in GRID])
    return grid if arg == 'grid' else grid[:{rate_trials}]
  sampler, pruner = {{'random': ('random', 'none'), 'tpe': ('tpe', 'none'),
                      'tpe_pruned': ('tpe', 'median')}}[arg]
  declared = pool.get_sweep(h, 'sweep=search')
  return dataclasses.replace(declared, sampler=sampler, pruner=pruner, trials=10_000)
'''


def launch(experiment, kind, workdir, workers, budget=None):
  """Runs the sweep command; stops it at `budget` seconds. Returns its wall seconds."""
  command = [sys.executable, 'launch.py', f'--config={experiment}:{kind}',
             f'--workdir={workdir}', '--sweep', f'--workers={workers}']
  started = time.time()
  with open(os.path.join(os.path.dirname(workdir), f'{os.path.basename(workdir)}.log'),
            'w') as log:
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
      proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGTERM)
      try:
        proc.wait(timeout=10)
      except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
  return time.time() - started, started


def finished_runs(workdir, before):
  """results.json records written before `before` (epoch seconds), each with its run_dir."""
  from cnn_jax.engine import results  # pylint: disable=g-import-not-at-top
  found = []
  for path in glob.glob(os.path.join(workdir, '*', 'results.json')):
    if os.path.getmtime(path) <= before:
      found.append({**results.read_file(path), 'run_dir': os.path.dirname(path)})
  return found


def ended_with(workdir, record) -> dict:
  """A population member's learning rate and momentum after the last interval."""
  with open(os.path.join(workdir, 'population.json')) as f:
    recorded = json.load(f)
  member = recorded['members'].index(os.path.basename(record['run_dir']))
  last = recorded['intervals'][-1]['values'] if recorded['intervals'] else recorded['start']
  return {path: values[member] for path, values in last.items()}


def machine() -> str:
  model = ''
  try:
    out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    model = next((l.split(':', 1)[1].strip() for l in out.splitlines()
                  if l.startswith('Model name')), '')
  except OSError:
    pass
  import jax  # pylint: disable=g-import-not-at-top
  return (f'{model or platform.processor()}, {len(os.sched_getaffinity(0))} cores, '
          f'jax {jax.__version__} ({jax.default_backend()})')


def main(_):
  from cnn_jax.engine import results  # pylint: disable=g-import-not-at-top
  out = FLAGS.out or tempfile.mkdtemp(prefix='search-benchmark-')
  os.makedirs(out, exist_ok=True)
  experiment = os.path.join(out, 'search_variants.py')
  with open(experiment, 'w') as f:
    f.write(EXPERIMENT.format(epochs=FLAGS.epochs, rate_trials=FLAGS.rate_trials,
                              population=FLAGS.population,
                              population_epochs=FLAGS.population_epochs or FLAGS.epochs))
  table = []
  for kind in FLAGS.strategies:
    workdir = os.path.join(out, kind)
    workers = 1 if kind == 'pbt' else FLAGS.workers  # (a population is one program)
    # A population's members finish together: it runs to its end, its time shown beside.
    budget = None if kind == 'pbt' else FLAGS.seconds
    seconds, started = launch(experiment, kind, workdir, workers, budget)
    runs = finished_runs(workdir, started + (budget or seconds))
    ok = [r for r in runs if r['status'] == 'ok']
    errors = sorted(results.final_metric(r, 'validation', 'error') for r in ok)
    best = min(ok, key=lambda r: results.final_metric(r, 'validation', 'error'), default=None)
    config = best and {k: best['config'][s][k.split('.')[1]] for k, s in (
        ('optimizer.learning_rate', 'optimizer'), ('optimizer.momentum', 'optimizer'),
        ('train.batch_size', 'train'), ('model.conv_features', 'model'))}
    if best and kind == 'pbt':  # where its numbers ended (results.json has its start)
      config.update(ended_with(workdir, best))
    row = {'strategy': kind, 'workers': workers, 'finished': len(runs), 'ok': len(ok),
           'pruned': sum(r['status'] == 'pruned' for r in runs),
           'diverged': sum(r['status'] == 'diverged' for r in runs),
           'best_val_error': errors[0] if errors else None,
           'its_test_error': best and results.final_metric(best, 'test', 'error'),
           'its_config': config, 'seconds': round(seconds, 1),
           'epochs_trained': round(sum(r['epochs'] for r in runs), 2)}
    table.append(row)
    print(json.dumps(row), flush=True)
  rates = {}
  for workers in (1, 2) if FLAGS.rate_trials else ():
    workdir = os.path.join(out, f'rate-{workers}')
    seconds, _ = launch(experiment, 'rate', workdir, workers)
    done = len(finished_runs(workdir, time.time()))
    rates[workers] = {'trials': done, 'seconds': round(seconds, 1),
                      'per_hour': round(3600 * done / seconds, 1)}
    print(json.dumps({'workers': workers, **rates[workers]}), flush=True)

  print(f'\nMachine: {machine()}; {FLAGS.epochs:g} epochs per trial, '
        f'{FLAGS.population_epochs or FLAGS.epochs:g} per PBT member, {FLAGS.seconds:.0f} s '
        f'per strategy; sweeps in {out}\n')
  print('| strategy | workers | trials finished (ok / pruned / diverged) | epochs trained | '
        'best validation error | its test error | its learning rate, momentum, batch, '
        'filters |')
  print('| --- | --- | --- | --- | --- | --- | --- |')
  for row in table:
    cfg = row['its_config']
    shown = (f'{cfg["optimizer.learning_rate"]:.3g}, {cfg["optimizer.momentum"]:.2f}, '
             f'{cfg["train.batch_size"]}, {"/".join(map(str, cfg["model.conv_features"]))}'
             if cfg else '-')
    pct = lambda v: f'{100 * v:.2f}%' if v is not None else '-'
    print(f'| {row["strategy"]} | {row["workers"]} | {row["finished"]} ({row["ok"]} / '
          f'{row["pruned"]} / {row["diverged"]}) | {row["epochs_trained"]:g} in '
          f'{row["seconds"]:.0f} s | {pct(row["best_val_error"])} | '
          f'{pct(row["its_test_error"])} | {shown} |')
  if not rates:
    return
  print(f'\nTrials per hour (the grid\'s first {FLAGS.rate_trials} trials to the end): '
        + '; '.join(f'{w} worker(s): {r["per_hour"]} ({r["trials"]} in {r["seconds"]} s)'
                    for w, r in rates.items())
        + (f'; 2 workers / 1: {rates[2]["per_hour"] / rates[1]["per_hour"]:.2f}x'
           if rates[1]['per_hour'] else ''))


if __name__ == '__main__':
  cli.run(main)
