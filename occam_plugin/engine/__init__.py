from . import hooks, optimizers, runner  # noqa: F401  (registers)

__all__ = []
