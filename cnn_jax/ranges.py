"""Range: the numbers a numeric config field allows, as data.

A field's range is declared once, beside the field (config/fields.py, or data/augment.py for
the augmentation strengths, which are declared where they are implemented), and read twice:
by the one generic check of config/validation.py, whose refusal names the field, the value
and the range, and by docs/CONFIG.md, whose `allowed` column is `text()`. A bound known only
with the dataset (the image's side, the training images) is a name here, which the docs show
as it is and validation replaces by its number.

It is a base module (it imports nothing of the project) so that the packages that implement
a field, below config/, can declare its range.
"""
from __future__ import annotations

import dataclasses
from typing import Union

Bound = Union[int, float, str, None]  # a number, a name of a bound known with the dataset, none


@dataclasses.dataclass(frozen=True)
class Range:
  """[low, high] with either end open; None: unbounded on that side. Integer ranges are
  closed. `noun` says what the number is in the docs ('pixels', 'a rate'); `why`, said in
  parentheses after a refusal, may name the bounds' values as {low} and {high}; `also`
  holds values allowed outside the range (a sentinel such as -1)."""
  low: Bound = None
  high: Bound = None
  low_open: bool = False
  high_open: bool = False
  integer: bool = False
  noun: str = ''
  why: str = ''
  also: tuple = ()

  def __post_init__(self):
    assert not (self.integer and (self.low_open or self.high_open)), 'integer ranges are closed'

  def text(self) -> str:
    """In words, for the docs: 'a number in [0, 1)', 'an integer >= 1, or -1'."""
    noun = self.noun or ('an integer' if self.integer else 'a number')
    extra = ''.join(f', or {value}' for value in self.also)
    if self.low is not None and self.high is not None:
      return f'{noun} in {self.interval(self.low, self.high)}{extra}'
    if self.low is not None:
      return f'{noun} {">" if self.low_open else ">="} {self.low}{extra}'
    if self.high is not None:
      return f'{noun} {"<" if self.high_open else "<="} {self.high}{extra}'
    return noun + extra

  def interval(self, low, high) -> str:
    return f'{"(" if self.low_open else "["}{low}, {high}{")" if self.high_open else "]"}'

  def holds(self, value, low, high) -> bool:
    """Whether `value` lies in the range, its bounds' values given (names resolved)."""
    if value in self.also:
      return True
    above = low is None or value > low or (value == low and not self.low_open)
    below = high is None or value < high or (value == high and not self.high_open)
    return above and below

  def refusal(self, low, high) -> str:
    """What a value outside the range must be, after 'must ': 'be between 1 and 60000',
    'lie in [0, 1)', 'be a positive integer, or -1 (...)'."""
    if self.integer:
      must = (f'be between {low} and {high}' if low is not None and high is not None
              else 'be a positive integer' if low == 1 and high is None
              else f'be >= {low}' if low is not None else f'be <= {high}')
    elif low is not None and high is not None:
      must = f'lie in {self.interval(low, high)}'
    elif low is not None:
      must = f'be {">" if self.low_open else ">="} {low}'
    else:
      must = f'be {"<" if self.high_open else "<="} {high}'
    must += ''.join(f', or {value}' for value in self.also)
    return must + (f' ({self.why.format(low=low, high=high)})' if self.why else '')
