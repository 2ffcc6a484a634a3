"""occam-plugin: OccamNets and other bias-mitigation methods for mmpretrain.

Importing this package registers every component into mmpretrain's
registries (``MODELS``, ``HOOKS``, ``METRICS``, ``DATASETS``,
``TRANSFORMS``), so a config needs only::

    custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)

The configs ship inside the package (``occam_plugin/.mim/configs``)::

    from occam_plugin import get_config_path
    cfg = Config.fromfile(get_config_path('occam_resnet18_bar.py'))

and so does the model zoo (``.mim/model-index.yml``, ``.mim/checkpoints``),
registered with mmpretrain's ``ModelHub`` on import (``model_zoo.py``)::

    mmpretrain.get_model('occamnets_resnet18-w16_1xb64_10e_biased-mnist-small',
                         pretrained=True)
"""
import warnings

# mmcv-lite (the pinned stack) has no compiled ops, and mmcv says so on
# every import of mmpretrain; no occam_plugin component needs them
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning)

from .version import __version__  # noqa: E402
from .config_path import (configs_root, get_config_path,  # noqa: E402
                          list_configs, resolve_config)
# registers every module
from . import datasets, engine, evaluation, models  # noqa: F401,E402
from .model_zoo import register_model_zoo_safely  # noqa: E402
from .models import OccamNet, OccamOutput, create_occam_model  # noqa: E402

register_model_zoo_safely()  # reads the small model-index files; never raises

__all__ = [
    '__version__', 'configs_root', 'get_config_path', 'list_configs',
    'resolve_config',
    'create_occam_model', 'OccamNet', 'OccamOutput'
]
