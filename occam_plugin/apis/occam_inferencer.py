import os.path as osp
import warnings
from typing import List, Optional, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmpretrain.apis import ImageClassificationInferencer
from mmpretrain.structures import DataSample

from occam_plugin.config_path import resolve_config
from occam_plugin.engine.runner import load_state_strictly, read_checkpoint
from .model import PYTHON_PARTIAL_HINT, init_occam_model

#: per-sample prediction fields an OccamNet adds (``OccamHead.predict``)
EXIT_FIELDS = ('exit_idx', 'exit_scores', 'exit_gates')


def _config_of(model: str):
    """``(config, weights)`` of a config file, a model-zoo name (its
    ``Weights:``) or a shipped config's name (weights None)."""
    from mmpretrain.apis import ModelHub
    if not osp.isfile(model) and ModelHub.has(str(model).lower()):
        metainfo = ModelHub.get(model)
        return metainfo.config, metainfo.weights
    return Config.fromfile(resolve_config(model)), None


class OccamInferencer(ImageClassificationInferencer):
    """mmpretrain's ``ImageClassificationInferencer`` with strict checkpoint
    loading and the exits in its results.

    Each result dict holds mmpretrain's ``pred_scores``, ``pred_label``,
    ``pred_score`` and ``pred_class`` and, for an OccamNet (also inside
    ``LfFClassifier``), ``exit_idx`` (int, the exit taken), ``exit_scores``
    (``E x C`` softmax of every exit) and ``exit_gates`` (``E``). With
    ``inference_mode='dynamic'`` the exits after the one taken were not
    computed and their rows are NaN. mmpretrain picks its inferencer from a
    fixed table (``inference_model``), so this class is reached by importing
    it: ``from occam_plugin.apis import OccamInferencer``.

    Args:
        model (str | Config | BaseModel): A config file, the name of a
            model of the zoo (``mmpretrain.list_models('*occamnets*')``) or
            of a shipped config (``occam_plugin.list_configs()``), a config
            or a built model.
        pretrained (str | bool): Checkpoint file, loaded strictly. True (as
            mmpretrain) takes the zoo model's published weights, else the
            config's ``load_from``; False or no ``load_from`` keeps random
            weights (with a warning for True).
        device (str | torch.device, optional): Where to run.
        classes (list[str], optional): Class names; defaults to the
            checkpoint's ``dataset_meta`` or the test dataset's classes.
        cfg_options (dict, optional): Config overrides, as ``--cfg-options``
            (only when ``model`` is a config).

    Raises:
        CheckpointError: The checkpoint does not fit the model (names it).
        ConfigError: A typo'd ``cfg_options`` key or a bad config value
            (``init_occam_model``).
    """

    def __init__(self,
                 model: Union[str, Config, BaseModel],
                 pretrained: Union[str, bool] = True,
                 device: Union[str, torch.device, None] = None,
                 classes: Optional[List[str]] = None,
                 cfg_options: Optional[dict] = None) -> None:
        if isinstance(model, BaseModel):
            if cfg_options:
                raise ValueError('cfg_options apply to a config; got a '
                                 f'built {type(model).__name__}.')
            if isinstance(pretrained, str):
                load_state_strictly(model, read_checkpoint(pretrained),
                                    pretrained,
                                    partial_hint=PYTHON_PARTIAL_HINT)
        else:
            if not isinstance(model, Config):
                model, weights = _config_of(model)
                if pretrained is True and weights is not None:
                    pretrained = weights
            if pretrained is True:
                pretrained = model.get('load_from')
                if pretrained is None:
                    warnings.warn('OccamInferencer: no checkpoint given and '
                                  'the config has no load_from; the model '
                                  'keeps its random initial weights.')
            model = init_occam_model(model, pretrained or None, device,
                                     cfg_options)
        # weights are loaded: mmpretrain must not load them again, non-strictly
        super().__init__(model, pretrained=False, device=device,
                         classes=classes)

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: List[np.ndarray],
                    return_datasamples: bool = False) -> list:
        results = super().postprocess(preds, visualization,
                                      return_datasamples)
        if return_datasamples:  # the DataSamples carry the exits already
            return results
        for result, sample in zip(results, preds):
            for key in EXIT_FIELDS:
                if key in sample:
                    value = sample.get(key)
                    result[key] = (value.detach().cpu().numpy()
                                   if isinstance(value, torch.Tensor) else
                                   value)
        return results
