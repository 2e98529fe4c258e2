"""docs/CONFIG.md, written from the field table (config/fields.py):

    python -m cnn_jax.config.fields > docs/CONFIG.md

(a test checks it is current)."""
from __future__ import annotations

from cnn_jax.config.fields import SECTIONS, of_section


def markdown() -> str:
  """docs/CONFIG.md: the table, section by section."""
  lines = ['# Config fields', '',
           'Every field of a config, from `cnn_jax/config/fields.py` (this file is written by',
           '`python -m cnn_jax.config.fields > docs/CONFIG.md`; a test checks it is current).',
           'Model defaults are the neutral ones of `architectures.base_model()`; experiment',
           'files start from `experiments/default.py` (T2\'s model) and change a few.', '',
           'Role: **program** fields identify the compiled program (runs differing in one never',
           'share a vmapped group); **traced** ones may differ between the members of a group',
           '(0 against non-zero is structural where marked "off at 0"); **execution** ones change',
           'how a run is computed, not which run it is (they may change when a run resumes).',
           '"A number" is a finite one: inf and NaN are refused like any other value outside',
           'a field\'s allowed ones.', '']
  for section in ('seed', *SECTIONS):
    lines += [f'## {section}', '', '| field | default | allowed | role | meaning |',
              '| --- | --- | --- | --- | --- |']
    for f in of_section(section):
      role = f.role + (' (off at 0)' if f.off_at_zero else '')
      lines.append(f'| `{f.path}` | `{f.default!r}` | {f.allowed} | {role} | {f.meaning} |')
    lines.append('')
  return '\n'.join(lines)
