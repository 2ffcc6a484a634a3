from .plain_classifier import PlainClassifier  # noqa: F401
from .occam_classifier import OccamClassifier

__all__ = ['OccamClassifier']
from .lff_classifier import LfFClassifier  # noqa: F401
