"""Generated bad inputs through every command: each ends with one `error:` line and exit
status 2, no traceback, and leaves every file as it was.

The inputs are generated, not listed: a wrong type and (where the field table says what is
allowed) an out-of-range value or an unknown choice for every config field; every flag of
the commands given a value it refuses; and a real finished run directory damaged in each of
its files in several ways (empty, cut short, not JSON, JSON of the wrong shape), given to
every command that reads it; workdirs that are files, lie under files or are read-only. The
commands run through tests/command_driver.py, which forks one child per input from a process
that imported the command once.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from cnn_jax.config import fields
from cnn_jax.machine import patience
from tests import prepared_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POOL = os.path.join(ROOT, 'experiments', 'pool.py')  # the commands run in the project's directory
RUN_ARGS = [f'--config={POOL}', '--config.train.num_train_steps=3',
            '--config.train.batch_size=16', '--config.train.pictures=none']
RUN_FILES = ('config.json', 'results.json', 'dataset.json', 'experiment.json')
DAMAGES = {'empty': b'', 'cut short': None, 'not JSON': b'\x00\xffgarbage{',
           'a JSON list': b'[1, 2]', 'other keys': b'{"colour": "blue"}'}


@pytest.fixture(scope='module')
def project(tmp_path_factory):
  """A directory as a user's checkout would hold one: data, a finished run (3 steps of T2 on
  96 mock images), a copy of the reproduction table and its archive."""
  base = tmp_path_factory.mktemp('project')
  data = base / 'tfds'
  prepared_data.write_prepared(data, {'train': 96, 'test': 96})
  run = base / 'run'
  env = dict(os.environ, TFDS_DATA_DIR=str(data))
  made = subprocess.run([sys.executable, os.path.join(ROOT, 'launch.py'), *RUN_ARGS,
                         f'--workdir={run}'], cwd=base, env=env, capture_output=True, text=True,
                        timeout=patience(300))
  assert made.returncode == 0, made.stderr[-3000:]
  shutil.copytree(os.path.join(ROOT, 'docs', 'reproduction_results'),
                  base / 'docs' / 'reproduction_results')
  shutil.copy(os.path.join(ROOT, 'docs', 'REPRODUCTION.md'), base / 'docs')
  (base / 'a_file').write_text('not a directory\n')
  return base


def field_cases() -> list[tuple[str, list[str]]]:
  """For every config field: a value of the wrong type, and one outside what it allows
  where the table says (an unknown choice, a negative count)."""
  cases = []
  for field in fields.FIELDS:
    flag = f'--config.{field.path}'
    if isinstance(field.default, bool):
      cases.append((f'{field.path} not a bool', [f'{flag}=perhaps'], field.path))
    elif isinstance(field.default, (int, float)):
      cases.append((f'{field.path} not a number', [f'{flag}=many'], field.path))
    elif isinstance(field.default, tuple):
      cases.append((f'{field.path} not a tuple', [f'{flag}=7.5.5'], field.path))
    if field.choices:
      cases.append((f'{field.path} unknown choice', [f'{flag}=no_such_choice'], field.path))
    elif (isinstance(field.default, int) and not isinstance(field.default, bool)
          and re.search(r'>= [01]\b|\[0, ', field.allowed)):
      cases.append((f'{field.path} negative', [f'{flag}=-3'], field.path))
  return cases


def launch_cases(project) -> list[tuple[str, list[str]]]:
  run, file = project / 'run', project / 'a_file'
  flags = [
      ('unknown flag', ['--wrkdir=x']), ('positional argument', ['now']),
      ('missing config file', ['--config=experiments/pool.py']),  # not in the project's dir
      ('unknown experiment argument', [f'--config={POOL}:variant=huge']),
      ('workers negative', ['--workers=-2', '--sweep']),
      ('trial of a search', [f'--config={POOL}:sweep=search', '--trial=1']),
      ('distributed unknown', ['--distributed=sometimes']),
      ('workdir is a file', [f'--workdir={file}']),
      ('workdir under a file', [f'--workdir={file}/run']),
      ('sweep workdir is a file', [f'--config={POOL}:sweep=arch', '--sweep',
                                   f'--workdir={file}']),
  ]
  cases = [(name, [f'--config={POOL}', *argv] if not any(
      a.startswith('--config=') for a in argv) else argv) for name, argv in flags]
  cases += [(name, [*RUN_ARGS, f'--workdir={project / "scratch"}', *argv], naming)
            for name, argv, naming in field_cases()]
  # A damaged config.json beside the checkpoint: the resume compares the two.
  cases += [(f'resume with config.json {damage}', [*RUN_ARGS, f'--workdir={run}-config-{i}'])
            for i, damage in enumerate(DAMAGES)]
  return cases


def reading_cases(project, flag: str, files=RUN_FILES) -> list[tuple[str, list[str]]]:
  """A command that reads a run directory: every file of it that it reads (`files`) damaged
  every way, and directories that are not one."""
  file = project / 'a_file'
  cases = [('workdir is a file', [f'{flag}={file}']),
           ('workdir missing', [f'{flag}={project / "nowhere"}']),
           ('workdir empty', [f'{flag}={project / "docs"}']),
           ('unknown flag', [f'{flag}={project / "run"}', '--colour=yes'])]
  for name in files:
    for i, damage in enumerate(DAMAGES):
      cases.append((f'{name} {damage}', [f'{flag}={project / f"run-{name}-{i}"}']))
  return cases


def damage_copies(project) -> None:
  """run-<file>-<k>: copies of the run with <file> damaged the k-th way (DAMAGES)."""
  run = project / 'run'
  for name in (*RUN_FILES, 'config'):
    for i, (damage, content) in enumerate(DAMAGES.items()):
      target = project / (f'run-config-{i}' if name == 'config' else f'run-{name}-{i}')
      if target.exists():
        continue
      shutil.copytree(run, target)
      path = target / ('config.json' if name == 'config' else name)
      whole = path.read_bytes() if path.exists() else b'{"experiment": "experiments/pool.py"}'
      path.write_bytes(whole[:len(whole) // 2] if content is None else content)


def snapshot(root) -> dict[str, tuple[int, int]]:
  """Every file's size and time of change, but a run directory's .lock (engine/workdir_lock.py:
  a command that reads a workdir to resume it takes the lock first, naming itself in it)."""
  return {os.path.relpath(os.path.join(d, f), root): (os.stat(os.path.join(d, f)).st_size,
                                                      os.stat(os.path.join(d, f)).st_mtime_ns)
          for d, _, names in os.walk(root) for f in names if f != '.lock'}


def run_commands(project, command: str, cases, tmp_path) -> list[dict]:
  listed = tmp_path / f'{command}.cases.json'
  got = tmp_path / f'{command}.results.json'
  listed.write_text(json.dumps([{'argv': case[1], 'cwd': str(project)} for case in cases]))
  env = dict(os.environ, TFDS_DATA_DIR=str(project / 'tfds'))
  proc = subprocess.run([sys.executable, 'tests/command_driver.py', command, str(listed),
                         str(got)], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=patience(600))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(got.read_text())


def one_error_line(result: dict, naming: str = '') -> str | None:
  """What is wrong with a command's answer to bad input, or None: exit status 2, and one
  `error: ...` line, the last, which names `naming` (before it, only the log: a run logs
  its config, many lines, before it reads its workdir)."""
  said = [line for line in result['stderr'].splitlines() if line.strip()]
  errors = [line for line in said if line.startswith('error: ')]
  if 'Traceback' in result['stderr']:
    return 'a traceback'
  if result['status'] != 2:
    return f'exit status {result["status"]}'
  if len(errors) != 1 or said[-1] != errors[0]:
    return f'{len(errors)} error lines, the last line {said[-1:]}'
  if naming not in errors[0]:
    return f'the line does not name {naming}: {errors[0]}'
  return None


COMMANDS = {  # the command, and the cases it gets
    'launch.py': launch_cases,
    'cnn_jax.evaluate': lambda project: [
        *reading_cases(project, '--workdir', [f for f in RUN_FILES if f != 'experiment.json']),
        ('split unknown', [f'--workdir={project / "run"}', '--split=train']),
        ('batch size negative', [f'--workdir={project / "run"}', '--batch_size=-5']),
        ('batch size not a number', [f'--workdir={project / "run"}', '--batch_size=lots'])],
    'cnn_jax.report': lambda project: reading_cases(project, '--workdir'),
    'cnn_jax.reproduce': lambda project: [
        ('archive mistyped', ['--report_only', '--archive=docs/reproduction_resutls']),
        ('archive of fewer runs', ['--report_only', '--seeds=2']),
        ('seeds zero', ['--report_only', '--seeds=0']),
        ('seeds not a number', ['--seeds=five']),
        ('only unknown', ['--only=nosuch']),
        ('output under a file', ['--report_only', f'--output={project / "a_file"}/r.md']),
        ('positional argument', ['all'])],
    'cnn_jax.time_layers': lambda project: [
        ('no config', []), ('members zero', [f'--config={POOL}', '--members=0']),
        ('unknown flag', [f'--config={POOL}', '--fast'])],
}


def test_generated_bad_inputs_are_one_line_exit_2_and_change_no_file(project, tmp_path):
  damage_copies(project)
  before = snapshot(project)
  wrong, count = [], 0
  for command, cases_of in COMMANDS.items():
    cases = cases_of(project)
    started = time.time()
    count += len(cases)
    for (name, argv, *naming), result in zip(cases,
                                             run_commands(project, command, cases, tmp_path)):
      problem = one_error_line(result, *naming)
      if problem:
        wrong.append(f'{command} {name} ({" ".join(argv)}): {problem}; stderr '
                     f'{result["stderr"][-600:]!r}')
    print(f'{command}: {len(cases)} inputs in {time.time() - started:.1f} s')
  assert count >= 50
  assert not wrong, f'{len(wrong)} of {count} inputs:\n' + '\n'.join(wrong)
  after = snapshot(project)
  changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
  assert not changed, changed


def test_a_read_only_workdir_is_one_line_naming_it(project, tmpfs, tmp_path):
  disk = tmpfs('1m')
  (disk / 'old').mkdir()
  if subprocess.run(['mount', '-o', 'remount,ro', str(disk)]).returncode:
    pytest.skip('cannot remount the tmpfs read-only')
  try:
    cases = [('new workdir on a read-only disk', [*RUN_ARGS, f'--workdir={disk}/new']),
             ('existing workdir on a read-only disk', [*RUN_ARGS, f'--workdir={disk}/old'])]
    results = run_commands(project, 'launch.py', cases, tmp_path)
  finally:
    subprocess.run(['mount', '-o', 'remount,rw', str(disk)])
  for (name, _), result in zip(cases, results):  # pylint: disable=unbalanced-tuple-unpacking
    assert one_error_line(result) is None, (name, result['stderr'][-2000:])
    assert 'read-only' in result['stderr'], (name, result['stderr'][-2000:])
    assert 'free some space' not in result['stderr']
