"""The one allow-list of pickle globals for files we load without running code.

Two loaders read pickles that a user may be handed by someone else:

* checkpoints, with ``torch.load(..., weights_only=True)`` (torch >= 2.6 does
  so by default and refuses any global that is not on its allow-list): an
  mmengine checkpoint carries, besides tensors, the ``MessageHub`` state
  (``HistoryBuffer`` objects holding numpy arrays) and numpy scalars in
  ``meta``; :func:`register_safe_globals` adds :data:`SAFE_GLOBALS` to
  torch's list (``import occam_plugin`` does it);
* prediction dumps (``tools/test.py --out``, mmengine's ``DumpResults``),
  whose unpickler (``occam_plugin.evaluation.predictions``) resolves only
  :data:`SAFE_GLOBALS`.

Both allow exactly these constructors instead of unpickling freely (which
would let a crafted file run arbitrary code). Every entry builds a value
(tensor, array, dtype, container, ``HistoryBuffer``); the two that could
reach further are bound to restricted functions: ``builtins.getattr`` to
:func:`history_buffer_getattr` and ``_codecs.encode`` to
:func:`encode_latin1`.
"""
import codecs
import pickle
from collections import OrderedDict
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from numpy._core import multiarray, numeric

__all__ = ['SAFE_GLOBALS', 'register_safe_globals', 'history_buffer_getattr',
           'encode_latin1']

#: names of the ``HistoryBuffer`` statistics a checkpoint may refer to: the
#: four that mmengine's HistoryBuffer registers itself (statistics that a
#: user registers with ``HistoryBuffer.register_statistics`` are not
#: allowed: name them here to load checkpoints that carry them)
_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj, name):
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    A ``HistoryBuffer`` pickles its ``statistics_methods`` dict, whose values
    (``HistoryBuffer.min`` ...) pickle as ``getattr(HistoryBuffer, 'min')``.
    Allowing the builtin ``getattr`` would let a file reach any attribute
    (and from there run code), so the name ``builtins.getattr`` is bound to
    this function, which resolves only those few methods.
    """
    allowed = set(_STATISTICS)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights_only checkpoint load: getattr({obj!r}, {name!r}) is not '
        'allowed; occam_plugin only allows HistoryBuffer statistics methods '
        f'{sorted(allowed)}.')


def encode_latin1(text, encoding='latin1'):
    """``_codecs.encode`` as protocol 2 uses it: ``bytes`` pickle as
    ``encode(str, 'latin1')``; any other codec or argument is refused."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != \
            'iso8859-1':
        raise pickle.UnpicklingError(
            f'_codecs.encode({type(text).__name__}, {encoding!r}) is not '
            "allowed; only encode(str, 'latin1') (pickled bytes) is.")
    return text.encode('latin1')


def _dtype_classes() -> Dict[str, Any]:
    """An unpickled ``np.dtype`` is BUILT as its dtype class
    (``np.dtypes.Float64DType``, ...): the types HistoryBuffer logs (float
    values, integer counts), numpy scalars in ``meta`` and the uint32 key of
    numpy's random state (RandomStateHook)."""
    found = {}
    for scalar in (np.float64, np.float32, np.float16, np.int64, np.int32,
                   np.uint32, np.bool_):
        cls = type(np.dtype(scalar))
        found[f'{cls.__module__}.{cls.__name__}'] = cls
    return found


#: ``module.name`` -> object, for every global a checkpoint or a prediction
#: dump may refer to
SAFE_GLOBALS: Dict[str, Any] = {
    # tensors: rebuilt from a storage (a prediction dump's storages are
    # loaded by PredictionUnpickler with weights_only=True)
    'torch._utils._rebuild_tensor_v2': torch._utils._rebuild_tensor_v2,
    'torch.Size': torch.Size,
    # a tensor's (empty) backward-hook dict
    'collections.OrderedDict': OrderedDict,
    # the MessageHub state of a checkpoint
    'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
    'builtins.getattr': history_buffer_getattr,
    # numpy arrays, scalars and dtypes; numpy 1.x wrote ``numpy.core``
    'numpy.ndarray': np.ndarray,
    'numpy.dtype': np.dtype,
    'numpy._core.multiarray._reconstruct': multiarray._reconstruct,
    'numpy._core.multiarray.scalar': multiarray.scalar,
    'numpy._core.numeric._frombuffer': numeric._frombuffer,  # protocol 5
    'numpy.core.multiarray._reconstruct': multiarray._reconstruct,
    'numpy.core.multiarray.scalar': multiarray.scalar,
    'numpy.core.numeric._frombuffer': numeric._frombuffer,
    **_dtype_classes(),
    # Python containers that protocol 2 names by their constructor
    'builtins.set': set,
    'builtins.frozenset': frozenset,
    'builtins.bytearray': bytearray,
    'builtins.complex': complex,
    '_codecs.encode': encode_latin1,
}


def register_safe_globals() -> List[Tuple[Any, str]]:
    """Add :data:`SAFE_GLOBALS` to torch's ``weights_only`` allow-list.

    Idempotent; returns the ``(object, name)`` pairs that were registered.
    """
    pairs = [(obj, name) for name, obj in SAFE_GLOBALS.items()]
    torch.serialization.add_safe_globals(pairs)
    return pairs
