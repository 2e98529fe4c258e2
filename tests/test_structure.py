"""The package's structure (docs/DESIGN.md): layers that import only downward, and modules
small enough to read.

A package or module of the library may import only from layers below its own (or from its own
package); `LAYERS` is the order, bottom first. Read from the source's import statements,
including those inside functions, so a late import cannot hide an upward arrow.
"""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(ROOT, 'cnn_jax')

# Bottom first. A name is a package (a folder of cnn_jax) or a top-level module.
LAYERS = (
    ('errors', 'credentials', 'console', 'cache_dir', 'machine', 'allocator', 'ranges',
     'member_view'),
    ('atomic_files', 'cpu_threads', 'interrupts'),
    ('startup',),
    ('layer_impls', 'data'),
    ('model', 'optim'),
    ('config',),
    ('engine',),
    ('trained',),
    ('pictures',),
    ('train',),
    ('sweeps',),
    ('reports',),
    ('cli',),
    ('evaluate', 'report', 'reproduce', 'time_layers'),
)
MAX_LINES = 300
MAX_LOOP_LINES = 250


def _unit(path: str) -> str:
  """The layer unit of a file under cnn_jax/: its package, or its module name."""
  parts = os.path.relpath(path, LIBRARY).split(os.sep)
  return parts[0] if len(parts) > 1 else parts[0][:-3]


def _library_files():
  for folder, _, names in os.walk(LIBRARY):
    for name in sorted(names):
      if name.endswith('.py'):
        yield os.path.join(folder, name)


def _imported_units(path: str) -> set[str]:
  units = set()
  for node in ast.walk(ast.parse(open(path).read())):
    names = []
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      if node.module == 'cnn_jax':
        names = [alias.name for alias in node.names]
      elif node.module.startswith('cnn_jax.'):
        names = [node.module.split('.')[1]]
    elif isinstance(node, ast.Import):
      names = [a.name.split('.')[1] for a in node.names if a.name.startswith('cnn_jax.')]
    units.update(names)
  return units


def test_every_unit_has_a_layer():
  layered = {unit for layer in LAYERS for unit in layer}
  found = {_unit(path) for path in _library_files()} - {'__init__'}
  assert found <= layered, f'not in LAYERS: {sorted(found - layered)}'


def test_imports_only_run_down_the_layers():
  level = {unit: k for k, layer in enumerate(LAYERS) for unit in layer}
  upward = []
  for path in _library_files():
    unit = _unit(path)
    for imported in _imported_units(path) - {unit}:
      if imported in level and level[imported] >= level[unit]:
        upward.append(f'{os.path.relpath(path, ROOT)} imports {imported}')
  assert not upward, '\n'.join(upward)


def test_modules_are_small():
  sizes = {os.path.relpath(path, ROOT): sum(1 for _ in open(path)) for path in _library_files()}
  large = {path: n for path, n in sizes.items() if n > MAX_LINES}
  assert not large, large
  assert sizes[os.path.join('cnn_jax', 'engine', 'loop.py')] < MAX_LOOP_LINES
