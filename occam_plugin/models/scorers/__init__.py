from .classifier_scorer import ClassifierScorer  # noqa: F401
from .ink_mass_scorer import InkMassScorer  # noqa: F401
from .color_scorer import ColorScorer  # noqa: F401
