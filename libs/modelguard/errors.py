"""The exceptions modelguard raises on purpose: one base, a few kinds.

Every error a caller may want to handle derives from :class:`ModelguardError`, and also
from the built-in it refines (``ValueError`` for bad input, ``RuntimeError`` for a failing
dependency), so existing ``except ValueError`` handlers keep working::

    try:
        policy = load_policy(path)
    except ConfigError as exc:   # a bad file or argument: say what and where
        ...
    except ModelguardError:      # anything else modelguard raised on purpose
        ...

>>> issubclass(ConfigError, ValueError) and issubclass(ConfigError, ModelguardError)
True
>>> issubclass(DependencyError, RuntimeError)
True
"""

from __future__ import annotations


class ModelguardError(Exception):
    """Base of every error modelguard raises on purpose."""


class InvalidInputError(ModelguardError, ValueError):
    """An event, value or argument that breaks the contract (never a server fault)."""


class ConfigError(ModelguardError, ValueError):
    """A configuration file, setting or CLI argument that is wrong; the message says where."""


class DependencyError(ModelguardError, RuntimeError):
    """A server modelguard needs (Kafka, Redis, Prometheus) is unreachable or misbehaves."""


class ConflictError(ModelguardError, RuntimeError):
    """A compare-and-set lost to a concurrent writer, or a lease was lost."""


class InvariantError(ModelguardError, RuntimeError):
    """A state the code rules out was reached: a bug, never bad input (the consumer's
    error boundary dead-letters the event that hit it and moves on)."""
