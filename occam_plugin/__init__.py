"""occam-plugin: OccamNets and other bias-mitigation methods for mmpretrain.

Importing this package registers every component into mmpretrain's
registries (``MODELS``, ``HOOKS``, ``METRICS``, ``DATASETS``,
``TRANSFORMS``), so a config needs only::

    custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
"""
from .version import __version__
from . import datasets, engine, evaluation, models  # noqa: F401  (registers)

__all__ = ['__version__']
