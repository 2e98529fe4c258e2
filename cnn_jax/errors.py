"""Errors a user fixes by changing a command, a config field or a directory.

The command-line entry points (cnn_jax/cli.py) print these as one line, `error: <message>`,
and exit with status 2; any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Base of the errors whose message alone tells the user what to change."""


class ConfigError(UserError, ValueError):
  """A config field holds a value that cannot work; the message names the field."""


class DatasetNotFoundError(UserError, FileNotFoundError):
  """The dataset is not prepared where we looked and downloading is off or failed."""


class WorkdirConflictError(UserError, RuntimeError):
  """The workdir holds a checkpoint of another config. Not a ConfigError: a sweep must stop
  here rather than record the trial as invalid and lose the checkpointed work."""


class WorkdirLockedError(UserError, RuntimeError):
  """Another live process is training into this workdir."""


class CorruptCheckpointError(UserError, RuntimeError):
  """The checkpoint file exists but cannot be read back into this run's state."""


class CorruptDatasetError(UserError, ValueError):
  """The prepared dataset's files are damaged, incomplete or not what it describes."""


class RunDirectoryError(UserError, FileNotFoundError):
  """A directory given as a trained run is missing, or lacks what is asked of it (its
  config.json, its checkpoint)."""


class InputError(UserError, ValueError):
  """An argument (a command-line flag, images given to a trained run) has a value that cannot
  work; the message names it, what was given and what is allowed."""
