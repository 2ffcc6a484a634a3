from .plain_classifier import PlainClassifier
from .occam_classifier import OccamClassifier
from .lff_classifier import LfFClassifier

__all__ = ['PlainClassifier', 'OccamClassifier', 'LfFClassifier']
