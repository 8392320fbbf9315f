"""Errors a user can fix. The command line prints their message without a traceback."""


class UserError(Exception):
    """Base class: the message names the file or key at fault and what to do."""


class ConfigError(UserError, ValueError):
    """A config file or an override is wrong."""


class PipelineError(UserError, RuntimeError):
    """The requested stages cannot run as asked (unknown stage, upstream not done)."""


class DataError(UserError, ValueError):
    """Input data is missing or malformed (data root, image, mask, label file)."""
