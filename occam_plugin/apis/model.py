"""Build a model from a config and load its checkpoint strictly."""
import copy
from typing import Optional, Union

import torch
from mmengine.config import Config

from occam_plugin.config_path import resolve_config
from occam_plugin.engine.runner import load_state_strictly, read_checkpoint
from occam_plugin.engine.runner.config_check import merge_cfg_options

__all__ = ['init_occam_model', 'PYTHON_PARTIAL_HINT']

#: how a Python user loads a checkpoint partially, on purpose
PYTHON_PARTIAL_HINT = ("mmpretrain's get_model(config, pretrained=checkpoint) "
                       'loads the matching keys only (non-strict).')

#: what ``mmpretrain.inference_model`` reads to pick its inferencer
TASK = 'Image Classification'


def _classification_metainfo(cfg: Config, name: str):
    """A model-index entry naming the task, as the model zoo's models carry:
    without it ``mmpretrain.inference_model`` refuses the model ("No
    available inferencer")."""
    from modelindex.models.Model import Model
    from modelindex.models.Result import Result
    dataset = cfg.get('test_dataloader', {}).get('dataset', {}).get(
        'type', 'unknown')
    return Model(name=name, config=name,
                 results=[Result(task=TASK, dataset=str(dataset),
                                 metrics={})])


def init_occam_model(config: Union[str, Config],
                     checkpoint: Optional[str] = None,
                     device: Union[str, torch.device, None] = None,
                     cfg_options: Optional[dict] = None):
    """``mmpretrain.get_model(config, pretrained=checkpoint)``, but strict.

    mmpretrain builds the model (default scope, the config's top-level
    ``data_preprocessor``, ``dataset_meta`` from the test dataset class);
    the checkpoint is then read with ``torch.load(weights_only=True)`` and
    must fit the model exactly. ``mmpretrain.get_model`` loads with
    mmengine's non-strict ``load_checkpoint``, which only logs a warning for
    a checkpoint of another model and leaves the unmatched weights random.

    Args:
        config (str | Config): A config file, the name of a shipped config
            (``occam_plugin.resolve_config``) or a loaded config.
        checkpoint (str, optional): Checkpoint file. None builds the model
            with its initial (random) weights.
        device (str | torch.device, optional): Where to put the model.
        cfg_options (dict, optional): Config overrides, as
            ``--cfg-options`` (e.g. ``{'model.backbone.base_channels': 8}``).

    Returns:
        BaseModel: The model in eval mode, with ``_config``,
        ``_dataset_meta`` (the checkpoint's when it has one) and a model-index
        entry for ``mmpretrain.inference_model``.

    Raises:
        FileNotFoundError: ``config`` is neither a file nor a shipped
            config.
        CheckpointError: The checkpoint is missing, unreadable, or has
            missing, unexpected or mis-shaped keys (the message names it).
        ConfigError: A ``cfg_options`` key the config lacks and nothing
            reads (a typo), or a config value a build would fail on (a
            ``ValueError``; the message names the key and the value).
    """
    from mmpretrain.apis import get_model
    if isinstance(config, Config):
        cfg, name = copy.deepcopy(config), config.filename or 'config'
    else:
        config = resolve_config(config)
        cfg, name = Config.fromfile(config), str(config)
    merge_cfg_options(cfg, cfg_options)  # as --cfg-options: typos refused
    model = get_model(cfg, pretrained=False, device=device)
    if checkpoint is not None:
        state = read_checkpoint(checkpoint)
        load_state_strictly(model, state, checkpoint,
                            partial_hint=PYTHON_PARTIAL_HINT)
        # the classes the run trained on (mmengine's Runner saves them)
        meta = (state.get('meta') or {}).get('dataset_meta')
        if meta:
            model._dataset_meta = meta
    model._metainfo = _classification_metainfo(cfg, name)
    return model.eval()
