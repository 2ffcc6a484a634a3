"""Allow-list for ``torch.load(..., weights_only=True)`` of mmengine checkpoints.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default, and
refuses any class that is not on its allow-list. An mmengine checkpoint
carries, besides tensors, the ``MessageHub`` state (``HistoryBuffer`` objects
holding numpy arrays) and numpy scalars in ``meta``. We allow exactly those
classes instead of switching ``weights_only`` off (which would let a
checkpoint run arbitrary code).
"""
import pickle
from typing import List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> List[object]:
    """Numpy reconstructors and dtype classes that pickled arrays refer to."""
    from numpy._core import multiarray
    found: List[object] = [multiarray._reconstruct, multiarray.scalar]
    # checkpoints written under numpy 1.x name ``numpy.core.multiarray``;
    # allow those names too (same functions, old module path).
    found += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
              (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    found += [np.ndarray, np.dtype]
    # an unpickled ``np.dtype`` is BUILT as its dtype class
    # (np.dtypes.Float64DType, ...): the types HistoryBuffer logs
    # (float values, integer counts), numpy scalars in ``meta`` and the
    # uint32 key of numpy's random state (RandomStateHook).
    for scalar in (np.float64, np.float32, np.float16, np.int64, np.int32,
                   np.uint32, np.bool_):
        found.append(type(np.dtype(scalar)))
    return found


#: names of the ``HistoryBuffer`` statistics a checkpoint may refer to: the
#: four that mmengine's HistoryBuffer registers itself (statistics that a
#: user registers with ``HistoryBuffer.register_statistics`` are not
#: allowed: name them here to load checkpoints that carry them)
_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj, name):
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    A ``HistoryBuffer`` pickles its ``statistics_methods`` dict, whose values
    (``HistoryBuffer.min`` ...) pickle as ``getattr(HistoryBuffer, 'min')``.
    Allowing the builtin ``getattr`` would let a checkpoint reach any
    attribute (and from there run code), so the name ``builtins.getattr`` is
    bound to this function, which resolves only those few methods.
    """
    allowed = set(_STATISTICS)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights_only checkpoint load: getattr({obj!r}, {name!r}) is not '
        'allowed; occam_plugin only allows HistoryBuffer statistics methods '
        f'{sorted(allowed)}.')


#: the classes added to torch's safe globals on ``import occam_plugin``
SAFE_GLOBALS = [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')
                ] + _numpy_globals()


def register_checkpoint_safe_globals() -> List[object]:
    """Add :data:`SAFE_GLOBALS` to torch's ``weights_only`` allow-list.

    Idempotent; returns the list that was registered.
    """
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    return SAFE_GLOBALS
