from . import metrics  # noqa: F401
from .predictions import load_predictions

__all__ = ['load_predictions']
