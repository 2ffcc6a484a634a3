"""Errors shared by every layer of the package."""

__all__ = ['MissingKeyError']


class MissingKeyError(LookupError):
    """A sample, data sample or dataset lacks a key that a step needs.

    The message names the step, the missing key, the keys that are there
    and how to provide it; ``str()`` is that message as written (a
    ``KeyError`` would show it quoted, as the repr of a key).
    """
