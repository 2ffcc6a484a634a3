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
from occam_plugin.datasets.transforms.loading import (
    DEFAULT_MAX_PIXELS, LoadImageFromFileChecked, check_max_pixels,
    read_image_checked)
from occam_plugin.engine.runner import load_state_strictly, read_checkpoint
from .model import PYTHON_PARTIAL_HINT, init_occam_model

__all__ = ['check_image_array', 'OccamInferencer']

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


def check_image_array(img, where: str) -> np.ndarray:
    """An in-memory image as the model reads it: ``H x W x 3`` uint8.

    The colour decoder gives a file's image that way (``mmcv.imread``: an
    alpha channel dropped, a grey image repeated to 3 channels), so an array
    is taken the same way: ``H x W x 4`` loses its alpha channel, ``H x W``
    and ``H x W x 1`` are repeated to 3 channels. Any other dtype than uint8
    is refused: a float array may be 0..1 or 0..255, and the model would
    predict on it without a word.

    Args:
        img (np.ndarray): The image.
        where (str): The input's name in messages (``'input 0'``).

    Returns:
        np.ndarray: The image, ``H x W x 3`` uint8.

    Raises:
        ValueError: Not uint8, an empty image, or not ``H x W [x 1|3|4]``.
    """
    expected = ('expected an H x W x 3 uint8 array (0..255, channels in '
                'the order mmcv.imread gives: BGR)')
    if img.dtype != np.uint8:
        finite = ''
        if np.issubdtype(img.dtype, np.number) and not np.all(
                np.isfinite(img)):
            finite = ' and holds NaN or infinite values'
        raise ValueError(
            f'OccamInferencer: {where} is a {img.dtype} array{finite}; '
            f'{expected}. Convert a 0..1 float image with '
            '(img * 255).round().astype(np.uint8).')
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f'OccamInferencer: {where} has shape {img.shape}; '
                         f'{expected} (H x W, x 1 or x 4 are converted)')
    if img.size == 0:
        raise ValueError(f'OccamInferencer: {where} is empty (shape '
                         f'{img.shape}); {expected}')
    if img.shape[2] == 4:  # as the colour decoder drops a file's alpha
        img = img[..., :3]
    elif img.shape[2] == 1:  # as it turns a grey file into 3 channels
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


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
        max_pixels (int | str, optional): Refuse an image file of more
            pixels (width x height), from its header, before its pixels are
            decoded. ``'pipeline'``: the test pipeline's
            ``LoadImageFromFileChecked`` limit (else ``DEFAULT_MAX_PIXELS``
            of :mod:`occam_plugin.datasets.transforms.loading`); None: no
            limit. Defaults to ``'pipeline'``.

    Image files are read as the test pipeline's ``LoadImageFromFileChecked``
    reads them (its decoder and colour type; errors name the file); arrays
    must be ``H x W x 3`` uint8 (see :func:`check_image_array`).

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
                 cfg_options: Optional[dict] = None,
                 max_pixels: Union[int, str, None] = 'pipeline') -> None:
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
                    from occam_plugin.model_zoo import verify_weights_hash
                    verify_weights_hash(weights)  # name-<sha256[:8]>.pth
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
        # the loading step the test pipeline keeps (see
        # LoadImageFromFileChecked): its reading settings apply to files
        self._loader = next((t for t in self.pipeline.transforms
                             if isinstance(t, LoadImageFromFileChecked)),
                            None)
        if max_pixels == 'pipeline':
            max_pixels = (DEFAULT_MAX_PIXELS if self._loader is None
                          else self._loader.max_pixels)
        self.max_pixels = check_max_pixels(max_pixels, 'OccamInferencer')

    def _read_input(self, input_, index: int) -> np.ndarray:
        if isinstance(input_, str):
            loader = self._loader
            kwargs = {} if loader is None else dict(
                color_type=loader.color_type,
                imdecode_backend=loader.imdecode_backend,
                backend_args=loader.backend_args)
            return read_image_checked(input_, max_pixels=self.max_pixels,
                                      **kwargs)
        if isinstance(input_, np.ndarray):
            return check_image_array(input_, f'input {index}')
        raise TypeError(f'OccamInferencer: input {index} is a '
                        f'{type(input_).__name__}; expected an image file '
                        'path or an H x W x 3 uint8 array')

    def preprocess(self, inputs: list, batch_size: int = 1):
        """mmpretrain's, on images read and checked here: a file through
        :func:`read_image_checked` (``max_pixels`` from the header, errors
        naming the file), an array through :func:`check_image_array`.

        Args:
            inputs (list): Image files or arrays.
            batch_size (int): Images per batch. Defaults to 1.
        """
        checked = (self._read_input(x, i) for i, x in enumerate(inputs))
        # mmpretrain's loading step takes an array as it is
        yield from super().preprocess(checked, batch_size)

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
