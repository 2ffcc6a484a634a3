from .classifier_scorer import ClassifierScorer
from .ink_mass_scorer import InkMassScorer
from .color_scorer import ColorScorer

__all__ = ['ClassifierScorer', 'InkMassScorer', 'ColorScorer']
