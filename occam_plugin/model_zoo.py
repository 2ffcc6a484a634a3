"""The model zoo in mmpretrain's ``ModelHub``: models by name.

``import occam_plugin`` registers the shipped ``model-index.yml`` (in
``occam_plugin/.mim``, or the checkout's) with
``mmpretrain.apis.ModelHub.register_model_index``, the way mmpretrain
registers its own, so that mmpretrain's API finds every published model by
name::

    import occam_plugin, mmpretrain
    mmpretrain.list_models('*occamnets*')
    model = mmpretrain.get_model(
        'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small', pretrained=True)

``Config:`` and ``Weights:`` in the metafiles are paths relative to the
index's folder (as in the repository). mmpretrain expands ``Config:``
against the ``config_prefix`` given at registration but hands ``Weights:``
to mmengine's ``load_checkpoint`` as it is, i.e. relative to the working
directory; so a relative ``Weights:`` is made absolute here (a URL is left
as it is). mmpretrain has no public way to list or edit registered entries,
so :func:`register_model_zoo` reads ``ModelHub._models_dict`` (mmpretrain
1.2, pinned ``<1.3``) for the names it added and their weights.

A published file is named ``<name>-<sha256[:8]>.pth`` (mmpretrain's
convention, ``tools/publish_model.py``): a zoo file whose content no longer
has that hash (a changed, truncated or replaced file) is refused, naming
both hashes, by ``OccamInferencer`` and by mmpretrain's ``get_model(name,
pretrained=True)``; for the latter a checkpoint loader is registered with
mmengine's ``CheckpointLoader.register_scheme`` for exactly the zoo's weight
paths (its prefixes are regular expressions), so other files load as
before.
"""
import hashlib
import os.path as osp
import re
import warnings
from typing import List, Optional

from .config_path import mim_root

__all__ = ['register_model_zoo', 'model_index_path', 'zoo_model_names',
           'verify_weights_hash']

INDEX = 'model-index.yml'
#: schemes mmengine's CheckpointLoader (or mim download) fetches; such a
#: ``Weights:`` is not a path
_URL_PREFIXES = ('http://', 'https://', 's3://', 'pavi://',
                 'open-mmlab://', 'openmmlab://', 'torchvision://',
                 'mmcls://')

_registered: List[str] = []

#: ``<name>-<8 hex>.pth``: the sha256 prefix of a published file
_HASHED_NAME = re.compile(r'-([0-9a-f]{8})\.pth$')


def verify_weights_hash(path: str) -> None:
    """Check a published file against the sha256 prefix in its name
    (``name-<8 hex>.pth``); a name without one is not checked.

    Args:
        path (str): The checkpoint file.

    Raises:
        CheckpointError: The file's sha256 does not start with the prefix
            of its name (names the file and both prefixes).
    """
    match = _HASHED_NAME.search(osp.basename(str(path)))
    if match is None or not osp.isfile(path):
        return  # the loader names a missing file
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    actual = digest.hexdigest()[:8]
    if actual != match.group(1):
        from occam_plugin.engine.runner import CheckpointError
        raise CheckpointError(
            f'checkpoint {path!r}: its content does not match the hash in '
            f'its name (expected sha256 prefix {match.group(1)}, the file '
            f'has {actual}): it was changed, truncated or replaced after '
            'publishing. Restore the published file (reinstall or git '
            'checkout it), or publish the new weights under their own '
            'hash with tools/publish_model.py.')


def _load_verified(filename: str, map_location=None) -> dict:
    """mmengine checkpoint loader of a zoo file: hash checked, then read
    with ``torch.load(weights_only=True)``."""
    from occam_plugin.engine.runner import read_checkpoint
    verify_weights_hash(filename)
    return read_checkpoint(filename, map_location=map_location or 'cpu')


def _guard_weights(paths: List[str]) -> None:
    from mmengine.runner import CheckpointLoader
    prefixes = [re.escape(p) + '$' for p in paths
                if p and _HASHED_NAME.search(osp.basename(p))]
    if prefixes:
        CheckpointLoader.register_scheme(prefixes, _load_verified,
                                         force=True)


def model_index_path() -> Optional[str]:
    """The shipped ``model-index.yml`` (None if this install has none)."""
    root = mim_root(INDEX)
    return None if root is None else osp.join(root, INDEX)


def zoo_model_names() -> List[str]:
    """The names this package registered with mmpretrain's ``ModelHub``
    (empty before :func:`register_model_zoo` or when it found no index)."""
    return list(_registered)


def _resolve_weights(hub, names: List[str], root: str) -> None:
    for name in names:
        metainfo = hub._models_dict[name]  # no public setter (see top)
        weights = metainfo.weights
        if weights and not weights.startswith(_URL_PREFIXES) and \
                not osp.isabs(weights):
            metainfo.weights = osp.normpath(osp.join(root, weights))


def register_model_zoo() -> List[str]:
    """Register the shipped model index with mmpretrain's ``ModelHub``.

    Idempotent (a second call registers nothing). Relative ``Weights:``
    become absolute paths inside the package.

    Returns:
        list[str]: The registered model names (lower case, as ModelHub
        keys them).

    Raises:
        ValueError: A name of the index is already in the ModelHub from
            another index (mmpretrain's message names both files).
    """
    if _registered:
        return list(_registered)
    index = model_index_path()
    if index is None:
        return []
    from mmpretrain.apis import ModelHub
    root = osp.dirname(index)
    before = set(ModelHub._models_dict)
    ModelHub.register_model_index(index, config_prefix=root)
    names = sorted(set(ModelHub._models_dict) - before)
    _resolve_weights(ModelHub, names, root)
    _guard_weights([ModelHub._models_dict[n].weights for n in names])
    _registered.extend(names)
    return list(_registered)


def register_model_zoo_safely() -> None:
    """:func:`register_model_zoo` for ``import occam_plugin``: a broken
    index must not break the import (the registries still work), so any
    error becomes one warning that names the index."""
    try:
        register_model_zoo()
    except Exception as err:  # noqa: BLE001  (import must not fail)
        warnings.warn(
            f'occam_plugin: the model zoo ({model_index_path()}) was not '
            'registered with mmpretrain\'s ModelHub, so its models are not '
            f'found by name: {type(err).__name__}: {err}')
