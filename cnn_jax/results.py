"""`<workdir>/results.json` and the human-readable form of error rates.

Error rates are fractions in JSON and percentages with two decimals for people.
"""
from __future__ import annotations

import json
import os
from typing import Any

FILENAME = 'results.json'


def percent(fraction: float | None) -> str:
  return 'n/a' if fraction is None else f'{100 * fraction:.2f}%'


def write(workdir: str, results: dict[str, Any]) -> str:
  path = os.path.join(workdir, FILENAME)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(results, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  return path


def read(workdir: str) -> dict[str, Any] | None:
  path = os.path.join(workdir, FILENAME)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
