"""Find the configs (and the model zoo) shipped inside the package.

Like mmpretrain, a built occam-plugin carries the repository's ``configs/``,
``tools/``, ``checkpoints/`` and ``model-index.yml`` in
``occam_plugin/.mim/`` -- copied into a wheel, symlinked for an editable
install -- so that after a plain ``pip install`` any model can be built from
a shipped config::

    from mmengine.config import Config
    from occam_plugin import get_config_path

    cfg = Config.fromfile(get_config_path('occam_resnet18_bar.py'))

``_base_`` files keep their places relative to the config, so a shipped
config (or a copy of the whole folder) resolves its bases as in the repo.

A config of your own, anywhere, inherits a shipped one through mmengine's
environment-variable substitution (``{{$NAME:default}}``, replaced before
``_base_`` is read; mmengine's ``pkg::`` scopes know only OpenMMLab's own
packages)::

    _base_ = [
        '{{$OCCAM_PLUGIN_CONFIGS:}}/occamnets/'
        'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py']

with ``OCCAM_PLUGIN_CONFIGS`` set to :func:`configs_root` (``export
OCCAM_PLUGIN_CONFIGS=$(python -c "import occam_plugin;
print(occam_plugin.configs_root())")``); :func:`resolve_config`, and so every
tool of ours, sets it when the environment does not.
"""
import os
import os.path as osp
from typing import List, Optional

__all__ = ['get_config_path', 'list_configs', 'configs_root', 'mim_root',
           'resolve_config', 'CONFIGS_ENV']

#: the environment variable a config's ``_base_`` names the shipped configs
#: folder by (``'{{$OCCAM_PLUGIN_CONFIGS:}}/...'``)
CONFIGS_ENV = 'OCCAM_PLUGIN_CONFIGS'

_PKG = osp.dirname(osp.abspath(__file__))


def mim_root(item: str = 'configs') -> Optional[str]:
    """The folder that holds the shipped ``item`` (``'configs'``,
    ``'checkpoints'``, ``'model-index.yml'``, ...): ``occam_plugin/.mim``, or,
    in a source checkout whose ``.mim`` lacks it (an editable install of an
    older setup.py, or none), the checkout. The paths in
    ``model-index.yml`` (``Config:``, ``Weights:``) are relative to it."""
    for root in (osp.join(_PKG, '.mim'), osp.dirname(_PKG)):
        path = osp.join(root, item)
        if (osp.isdir(osp.join(path, '_base_')) if item == 'configs' else
                osp.exists(path)):
            return root
    return None


def configs_root() -> Optional[str]:
    """The folder of the shipped configs: ``occam_plugin/.mim/configs``, or,
    in a source checkout without ``.mim``, the checkout's ``configs/``."""
    root = mim_root('configs')
    return None if root is None else osp.join(root, 'configs')


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


def resolve_config(config: str) -> str:
    """A config given as a path or as the name of a shipped config.

    An existing file is returned as given (a path relative to the working
    directory keeps working inside a clone); anything else is looked up
    among the shipped configs by :func:`get_config_path`: a bare name
    (``'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small'``), a path
    relative to the configs folder, or a repository path
    (``'configs/occamnets/....py'``, as the README writes them), so that the
    same command works outside a clone. Sets :data:`CONFIGS_ENV` to
    :func:`configs_root` unless the environment sets it, so that a config
    of the user's whose ``_base_`` starts with ``{{$OCCAM_PLUGIN_CONFIGS:}}``
    loads.

    Args:
        config (str): A config file path or a shipped config's name.

    Returns:
        str: The path of an existing config file.

    Raises:
        FileNotFoundError: Neither a file nor a shipped config (the message
            says both, and lists the shipped configs).
    """
    config = os.fspath(config)
    root = configs_root()
    if root is not None:
        os.environ.setdefault(CONFIGS_ENV, root)
    if osp.isfile(config):
        return config
    rel = config.replace('\\', '/')
    if rel.startswith('configs/'):
        rel = rel[len('configs/'):]
    try:
        return get_config_path(rel)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'config {config!r} is neither a file (relative to '
            f'{os.getcwd()}) nor a shipped config: {err}') from None
