"""T2's per-step time on 1 device, on 1 process x 4 CPU devices and on 2 processes x 2 CPU
devices (jax.distributed over gloo on localhost), measured side by side on this machine:

    python benchmarks/distributed.py [--steps=600] [--rounds=2]

Each configuration is launch.py's real run (real MNIST, XLA's layers pinned, no pictures);
the per-step time is its training seconds after the first step (compilation) over the steps
after it, from results.json. The rounds alternate the configurations, so that a change in
the machine's load falls on all of them. Printed: the per-step time of each, and what the
processes' communication costs per step (2 x 2 against 1 x 4: the same 4-way split of each
batch, the all-reduce in-process or over gloo).
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import flags  # pylint: disable=wrong-import-position

from cnn_jax import cli  # pylint: disable=wrong-import-position
from cnn_jax import cpu_threads  # pylint: disable=wrong-import-position

flags.DEFINE_integer('steps', 600, 'Train steps of each run.', lower_bound=2)
flags.DEFINE_integer('rounds', 2, 'Rounds over the three configurations.', lower_bound=1)


def environment(devices: int) -> dict:
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  env.pop('PJRT_NPROC', None)
  cpu_threads.size_pools_before_jax(env)
  env.setdefault('TFDS_DATA_DIR', os.path.join(ROOT, '..', 'shared', 'data', 'tfds'))
  return env


def per_step(workdir: str) -> float:
  with open(os.path.join(workdir, 'results.json')) as f:
    record = json.load(f)
  return (record['train_seconds'] - record['first_step_seconds']) / (record['steps'] - 1)


def run(name: str, steps: int, workdir: str) -> float:
  args = [sys.executable, 'launch.py', '--config=experiments/pool.py',
          f'--config.train.num_train_steps={steps}', '--config.model.conv_impl=xla',
          '--config.model.pool_impl=xla', '--config.train.pictures=none',
          f'--workdir={workdir}']
  if name == '2 processes x 2 devices':
    with socket.socket() as s:
      s.bind(('', 0))
      port = s.getsockname()[1]
    procs = [subprocess.Popen(args + ['--distributed=explicit', f'--coordinator=localhost:{port}',
                                      '--num_processes=2', f'--process_id={i}'], cwd=ROOT,
                              env=environment(2), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for i in range(2)]
    codes = [p.wait() for p in procs]
  else:
    devices = 4 if name == '1 process x 4 devices' else 1
    codes = [subprocess.run(args, cwd=ROOT, env=environment(devices), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode]
  if any(codes):
    raise SystemExit(f'{name}: exit status {codes}')
  return per_step(workdir)


def main(argv):
  del argv  # cli.parse_flags refuses arguments that are not flags
  options = flags.FLAGS
  names = ['1 process x 1 device', '1 process x 4 devices', '2 processes x 2 devices']
  times = {name: [] for name in names}
  with tempfile.TemporaryDirectory() as tmp:
    for round_ in range(options.rounds):
      for name in names:
        times[name].append(run(name, options.steps, os.path.join(tmp, f'{round_}-{len(times[name])}-{names.index(name)}')))
        print(f'round {round_}: {name}: {times[name][-1] * 1000:.1f} ms per step', flush=True)
  print(f'\nT2, batch 64, {options.steps} steps, {options.rounds} rounds, load '
        f'{os.getloadavg()[0]:.1f}; per-step time (median of rounds):')
  median = {name: statistics.median(values) for name, values in times.items()}
  for name in names:
    print(f'  {name:26s} {median[name] * 1000:6.1f} ms')
  cost = median['2 processes x 2 devices'] - median['1 process x 4 devices']
  print(f'  the processes\' communication: {cost * 1000:+.1f} ms per step (2 x 2 against 1 x 4; '
        'one all-reduce of 5,994 gradients and 3 sums, 24 KB)')


if __name__ == '__main__':
  cli.run(main)
