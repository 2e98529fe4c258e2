"""A member's config as its step reads it: the config's values, with the member's traced values
in their place.

The members of a vmapped group share one program and may differ in traced numbers (the
`traced` fields of config/fields.py; engine/grouping.py finds those that differ and
engine/program.py stacks them into the state under 'traced'). The model (model/cnn.py and
model/layer_list.py), the optimizer (optim/optimizers.py), augmentation (data/augment.py)
and the loss (engine/step.py) all read a config section through a Section, the same way:
`section.learning_rate` is the member's traced value where its group traces it, the config's
number otherwise. A plain config section is read the same way (a Section with nothing traced).

What a program is made of never depends on a traced value: `section.is_on(field)` answers from
the config itself, which every member of one program agrees on (grouping.program_key keys on
whether each off-at-zero field is on).

A base module (it imports nothing of the project), so that every package that builds a part of
the step can read a view.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Section(Mapping):
  """One config section (a ConfigDict or a dict) with some of its fields replaced by traced
  values: read by item or by attribute, like the section itself."""

  def __init__(self, config, traced: Mapping | None = None):
    self._config, self._traced = config, dict(traced or {})

  def __getitem__(self, field: str) -> Any:
    return self._traced[field] if field in self._traced else self._config[field]

  def __getattr__(self, field: str) -> Any:
    if field.startswith('_'):  # not a field (and no recursion before __init__ has run)
      raise AttributeError(field)
    try:
      return self[field]
    except KeyError:
      raise AttributeError(field) from None

  def __contains__(self, field) -> bool:
    return field in self._config

  def __iter__(self):
    return iter(self._config.keys())

  def __len__(self) -> int:
    return len(self._config.keys())

  def is_on(self, field: str) -> bool:
    """Whether an off-at-zero field's part of the program exists: from the config's own
    number, never a traced one."""
    return self._config[field] > 0


def section(config, traced: Mapping | None = None) -> Section:
  """`config` (a config section, or a Section already) read with `traced` ({field: value})
  in place of its values."""
  if isinstance(config, Section):
    # pylint: disable-next=protected-access
    return Section(config._config, {**config._traced, **(traced or {})})
  return Section(config, traced)


class Member:
  """A whole config with one member's traced values ({section: {field: value}}, the state's
  'traced'): `member.optimizer` is that section as a Section."""

  def __init__(self, config, traced: Mapping | None = None):
    self._config, self._traced = config, traced or {}

  def __getattr__(self, name: str) -> Section:
    if name.startswith('_'):
      raise AttributeError(name)
    return section(self._config[name], self._traced.get(name))
