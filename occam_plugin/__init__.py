"""occam-plugin: OccamNets and other bias-mitigation methods for mmpretrain.

Importing this package registers every component into mmpretrain's
registries (``MODELS``, ``HOOKS``, ``METRICS``, ``DATASETS``,
``TRANSFORMS``), so a config needs only::

    custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)

The configs ship inside the package (``occam_plugin/.mim/configs``)::

    from occam_plugin import get_config_path
    cfg = Config.fromfile(get_config_path('occam_resnet18_bar.py'))
"""
from .version import __version__
from .config_path import get_config_path, list_configs
from . import datasets, engine, evaluation, models  # noqa: F401  (registers)

__all__ = ['__version__', 'get_config_path', 'list_configs']
