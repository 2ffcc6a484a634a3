from . import hooks, runner  # noqa: F401  (registers)

__all__ = []
