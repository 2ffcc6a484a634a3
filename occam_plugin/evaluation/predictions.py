"""Load prediction dumps (``tools/test.py --out``) without running code.

mmengine's ``DumpResults`` pickles a list of per-sample dicts (tensors, numpy
arrays and scalars, Python containers). ``pickle.load`` on such a file runs
whatever callable the file names, so a crafted ``preds.pkl`` runs code on the
machine that opens it. :func:`load_predictions` unpickles with an allow-list:
only the constructors of ``occam_plugin.safe_globals.SAFE_GLOBALS`` (the
allow-list checkpoints are loaded with) are resolved, everything else is
refused with :class:`pickle.UnpicklingError`.

A pickled tensor keeps its storage as ``torch.storage._load_from_bytes(b)``,
which calls ``torch.load(b, weights_only=False)``: a second code path. That
name is bound to :func:`_load_storage_safely`, which loads the bytes with
``weights_only=True`` instead.
"""
import _compat_pickle
import io
import os.path as osp
import pickle
from typing import List

import torch

from ..safe_globals import SAFE_GLOBALS

__all__ = ['load_predictions', 'PredictionUnpickler']

#: the storage reconstructor of a pickled tensor (bound per file)
_STORAGE_GLOBAL = 'torch.storage._load_from_bytes'


class PredictionUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`SAFE_GLOBALS`.

    Args:
        file: Binary file object to read the pickle from.
        path (str): The file's name, for error messages.
    """

    def __init__(self, file, path: str):
        super().__init__(file)
        self.path = path

    def _refuse(self, what: str) -> pickle.UnpicklingError:
        allowed = sorted(SAFE_GLOBALS) + [_STORAGE_GLOBAL]
        return pickle.UnpicklingError(
            f'{self.path}: refused to load {what}. A predictions dump '
            '(tools/test.py --out) holds only tensors, numpy values and '
            f'Python containers; allowed globals: {allowed}. The file was '
            'not written by DumpResults or was crafted to run code; do not '
            'open it with pickle.load.')

    def find_class(self, module: str, name: str):
        # protocol < 3 writes Python 2 names (``__builtin__.set``); map them
        # as pickle's own find_class does, then check the Python 3 name
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        key = f'{module}.{name}'
        if key == _STORAGE_GLOBAL:
            return self._load_storage_safely
        if key not in SAFE_GLOBALS:
            raise self._refuse(f'global {key!r}')
        return SAFE_GLOBALS[key]

    def persistent_load(self, pid):
        raise self._refuse(f'persistent id {pid!r}')

    def _load_storage_safely(self, data: bytes):
        """``torch.storage._load_from_bytes`` with ``weights_only=True``."""
        if not isinstance(data, bytes):
            raise self._refuse(f'{_STORAGE_GLOBAL}({type(data).__name__})')
        try:
            return torch.load(io.BytesIO(data), map_location='cpu',
                              weights_only=True)
        except pickle.UnpicklingError as err:
            raise pickle.UnpicklingError(
                f'{self.path}: refused a tensor storage whose bytes need '
                f"more than torch's weights_only allow-list ({err})") from err


def load_predictions(path: str) -> List[dict]:
    """Load a predictions dump (``tools/test.py --out``, mmengine's
    ``DumpResults``) without letting the file run code.

    Args:
        path (str): The ``.pkl`` file.

    Returns:
        list[dict]: One dict per sample (``pred_label``, ``pred_score``,
        ``gt_label``, ``exit_idx``, ``exit_scores``, ... as dumped).

    Raises:
        pickle.UnpicklingError: The file names a global that a dump does not
            need (it is not loaded any further).
        ValueError: The file holds something else than a list of dicts.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'predictions file {path!r} does not exist.')
    with open(path, 'rb') as f:
        results = PredictionUnpickler(f, path).load()
    if not isinstance(results, list) or not all(
            isinstance(r, dict) for r in results):
        raise ValueError(
            f'{path}: expected a list of per-sample dicts (as tools/test.py '
            f'--out writes), got {type(results).__name__}.')
    return results
