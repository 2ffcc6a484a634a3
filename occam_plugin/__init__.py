"""occam-plugin: OccamNets and other bias-mitigation methods for mmpretrain.

Importing this package registers every component into mmpretrain's
registries (``MODELS``, ``HOOKS``, ``METRICS``, ``DATASETS``,
``TRANSFORMS``), so a config needs only::

    custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
"""
import warnings

# mmcv-lite (the pinned stack) has no compiled ops, and mmcv says so on
# every import of mmpretrain; no occam_plugin component needs them
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning)

from .version import __version__  # noqa: E402
from . import datasets, engine, evaluation, models  # noqa: F401,E402  (registers)

__all__ = ['__version__']
