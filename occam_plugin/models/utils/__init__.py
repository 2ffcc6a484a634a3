"""The protocols a new component implements (a backbone family's
:class:`StageDescriber`, a stateful module's :class:`TrainingState`, a
module's :class:`AnnotationNeeds`) and the functions that read them."""
from .annotation_needs import AnnotationNeeds, GroupAnnotationNeeds
from .stages import (BackboneStages, StageDescriber, describe_backbone,
                     get_describer, register_describer)
from .training_state import TrainingState, TrainingStateMismatch

__all__ = [
    'AnnotationNeeds', 'GroupAnnotationNeeds', 'BackboneStages',
    'StageDescriber',
    'describe_backbone', 'get_describer', 'register_describer',
    'TrainingState', 'TrainingStateMismatch'
]
