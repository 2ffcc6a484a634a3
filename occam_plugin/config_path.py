"""Find the configs shipped inside the package.

Like mmpretrain, a built occam-plugin carries the repository's ``configs/``
(and ``tools/``) in ``occam_plugin/.mim/`` -- copied into a wheel, symlinked
for an editable install -- so that after a plain ``pip install`` any model
can be built from a shipped config::

    from mmengine.config import Config
    from occam_plugin import get_config_path

    cfg = Config.fromfile(get_config_path('occam_resnet18_bar.py'))

``_base_`` files keep their places relative to the config, so a shipped
config (or a copy of the whole folder) resolves its bases as in the repo.
"""
import os
import os.path as osp
from typing import List, Optional

__all__ = ['get_config_path', 'list_configs', 'configs_root']

_PKG = osp.dirname(osp.abspath(__file__))


def configs_root() -> Optional[str]:
    """The folder of the shipped configs: ``occam_plugin/.mim/configs``, or,
    in a source checkout without ``.mim``, the checkout's ``configs/``."""
    for root in (osp.join(_PKG, '.mim', 'configs'),
                 osp.join(osp.dirname(_PKG), 'configs')):
        if osp.isdir(osp.join(root, '_base_')):
            return root
    return None


def list_configs(include_bases: bool = False) -> List[str]:
    """Every shipped config, as a path relative to :func:`configs_root`
    (``'occam_resnet18_bar.py'``,
    ``'lff/lff_mlp_1xb256_100e_colored-mnist.py'``);
    ``_base_`` files only if ``include_bases``."""
    root = configs_root()
    if root is None:
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(
            d for d in dirnames if d != '__pycache__' and (
                include_bases or d != '_base_'))
        rel = osp.relpath(dirpath, root)
        found += [f if rel == '.' else osp.join(rel, f).replace(os.sep, '/')
                  for f in sorted(filenames) if f.endswith('.py')]
    return found


def get_config_path(name: str) -> str:
    """Absolute path of a shipped config.

    Args:
        name (str): The config's path relative to the configs folder
            (``'occam_resnet18_bar.py'``,
            ``'lff/lff_resnet18_1xb256_100e_colored-mnist'``; ``.py`` may be
            left out), or just its file name when that is
            unique (``'lff_mlp_1xb256_100e_colored-mnist.py'``).

    Raises:
        FileNotFoundError: No such config (the message lists the shipped
            ones), or the package was installed without its configs.
    """
    root = configs_root()
    if root is None:
        raise FileNotFoundError(
            f'occam_plugin at {_PKG} has no shipped configs (no .mim/configs):'
            ' reinstall it from a wheel or the repository with pip '
            '(`pip install occam-plugin` / `pip install .`).')
    rel = name.replace('\\', '/').lstrip('/')
    if not rel.endswith('.py'):
        rel += '.py'
    path = osp.join(root, *rel.split('/'))
    if osp.isfile(path):
        return path
    configs = list_configs(include_bases=True)
    same_name = [c for c in configs if c.rsplit('/', 1)[-1] == rel]
    if len(same_name) == 1:
        return osp.join(root, *same_name[0].split('/'))
    if len(same_name) > 1:
        raise FileNotFoundError(
            f'config {name!r} is ambiguous: {", ".join(same_name)}; pass the '
            'path relative to the configs folder.')
    raise FileNotFoundError(
        f'no shipped config {name!r} in {root}; shipped: '
        f'{", ".join(list_configs())}')
