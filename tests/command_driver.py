"""Runs one command (launch.py, or a module such as cnn_jax.evaluate) on many argument lists,
each in a forked child of one process that imported the command once: the bad-input fuzz
test's hundred cases then cost a fork each, not an interpreter and JAX's import each.

    python tests/command_driver.py COMMAND CASES.json RESULTS.json

COMMAND is a path ('launch.py') or a module name ('cnn_jax.report'). CASES.json is a list of
{"argv": [...], "cwd": DIR}; RESULTS.json gets, for each, {"status", "stdout", "stderr"}. Each
child runs cli.run(main, argv) as the command's `__main__` does, with its own flags: nothing
is parsed in this process, and JAX's backends are never started here before a fork.
"""
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELOAD = ('cnn_jax.train', 'cnn_jax.trained', 'cnn_jax.reports.run_report',
           'cnn_jax.reports.sweep_report', 'cnn_jax.sweeps.runner', 'cnn_jax.config.validation')
TIMEOUT = 120  # seconds; a case that is accepted by mistake would train for minutes


def load(command: str):
  if command.endswith('.py'):
    spec = importlib.util.spec_from_file_location('command_under_test',
                                                  os.path.join(ROOT, command))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
  return importlib.import_module(command)


def run_case(module, argv: list[str], cwd: str) -> dict:
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    pid = os.fork()
    if pid == 0:  # the child: the command, as its __main__ runs it
      os.dup2(out.fileno(), 1)
      os.dup2(err.fileno(), 2)
      status = 1
      try:
        os.chdir(cwd)
        sys.argv = argv  # (ml_collections reads --config.X overrides from sys.argv too)
        from cnn_jax import cli  # pylint: disable=g-import-not-at-top
        cli.run(module.main, argv)
        status = 0
      except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if isinstance(stop.code, str):
          print(stop.code, file=sys.stderr)
      except BaseException:  # pylint: disable=broad-except  (a traceback is what we look for)
        traceback.print_exc()
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(status)  # pylint: disable=protected-access
    status = _wait(pid)
    out.seek(0)
    err.seek(0)
    return {'status': status, 'stdout': out.read().decode(errors='replace'),
            'stderr': err.read().decode(errors='replace')}


def _wait(pid: int) -> int:
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  deadline = time.time() + TIMEOUT
  while time.time() < deadline:
    done, code = os.waitpid(pid, os.WNOHANG)
    if done:
      return os.waitstatus_to_exitcode(code)
    time.sleep(0.02)
  os.kill(pid, signal.SIGKILL)
  os.waitpid(pid, 0)
  return -signal.SIGKILL


def main() -> None:
  command, cases_path, results_path = sys.argv[1:]
  sys.path.insert(0, ROOT)
  from cnn_jax import startup  # pylint: disable=g-import-not-at-top
  startup.before_jax()  # as each command's __main__ does, before JAX loads
  module = load(command)
  for name in PRELOAD:  # what the commands import in main: once here, not in every child
    importlib.import_module(name)
  with open(cases_path) as f:
    cases = json.load(f)
  prog = command if command.endswith('.py') else command.rpartition('.')[2]
  results = [run_case(module, [prog, *case['argv']], case['cwd']) for case in cases]
  with open(results_path, 'w') as f:
    json.dump(results, f)


if __name__ == '__main__':
  main()
