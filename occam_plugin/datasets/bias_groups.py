"""Bias groups shared by the biased datasets: group names, the group index
of a sample and its bias fields of the data-sample contract
(``docs/architecture.md``).

Two groupings of ``(class, bias)``:

* by value: ``group_idx = V * class + value`` (V values of the bias
  attribute), e.g. BiasedMNIST ``class_x_primary``, ColoredMNIST
  ``class_x_color``;
* by alignment: ``group_idx = 2 * class + (0 aligned, 1 conflicting)``,
  e.g. ``class_x_aligned``, and COCO-on-Places' majority / minority.
"""
from typing import Dict, List, Optional, Sequence

__all__ = [
    'check_group_by', 'group_names', 'class_x_bias_names', 'group_metainfo',
    'value_group', 'aligned_group', 'class_x_bias_group', 'bias_fields'
]

#: the two alignment groups of a class, in ``group_idx`` order
ALIGNMENT = ('aligned', 'conflicting')
#: the ``group_by`` value of the grouping by alignment (every other
#: ``group_by`` of a dataset groups by the bias value)
BY_ALIGNMENT = 'class_x_aligned'


def check_group_by(group_by: str, choices: Sequence[str]) -> None:
    """Raise a ``ValueError`` naming ``group_by`` unless it is one of
    ``choices``."""
    if group_by not in choices:
        raise ValueError(f'group_by must be one of {choices}, got '
                         f'{group_by!r}')


def group_names(classes: Sequence[str],
                values: Sequence[str],
                sep: str = '|') -> List[str]:
    """``'<class><sep><value>'`` per group, class-major: the name of
    ``group_idx = len(values) * class + value``."""
    return [f'{c}{sep}{v}' for c in classes for v in values]


def class_x_bias_names(classes: Sequence[str], group_by: str,
                       value_names: Sequence[str]) -> List[str]:
    """Group names of ``group_by``: ``'<class>|<value name>'`` when grouped
    by value, ``'<class>|aligned'`` / ``'<class>|conflicting'`` when grouped
    by alignment (:data:`BY_ALIGNMENT`)."""
    return group_names(classes,
                       ALIGNMENT if group_by == BY_ALIGNMENT else value_names)


def group_metainfo(classes: Sequence[str],
                   names: List[str],
                   metainfo: Optional[dict] = None,
                   **extra) -> dict:
    """Dataset ``metainfo``: ``classes``, ``num_groups``, ``group_names``,
    then ``extra``, overridden by the user's ``metainfo``."""
    meta = dict(classes=classes, num_groups=len(names), group_names=names,
                **extra)
    meta.update(metainfo or {})
    return meta


def value_group(label: int, value: int, num_values: int) -> int:
    """Group of a sample grouped by the bias value."""
    return num_values * label + value


def aligned_group(label: int, aligned: bool) -> int:
    """Group of a sample grouped by alignment (0 aligned, 1 conflicting)."""
    return 2 * label + (0 if aligned else 1)


def class_x_bias_group(group_by: str, label: int, value: int, aligned: bool,
                       num_values: int) -> int:
    """``group_idx`` of a sample under ``group_by`` (see
    :func:`class_x_bias_names`)."""
    if group_by == BY_ALIGNMENT:
        return aligned_group(label, aligned)
    return value_group(label, value, num_values)


def bias_fields(group: int, factors: Dict[str, int],
                aligned: Dict[str, bool], primary: str) -> dict:
    """The bias keys of a multi-factor sample: ``group_idx``,
    ``bias_label`` / ``bias_aligned`` (of the ``primary`` factor),
    ``bias_factors`` and ``bias_factors_aligned``."""
    return dict(group_idx=group,
                bias_label=factors[primary],
                bias_aligned=aligned[primary],
                bias_factors=factors,
                bias_factors_aligned=aligned)
