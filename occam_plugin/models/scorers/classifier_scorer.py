from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

__all__ = ['ClassifierScorer']


@MODELS.register_module()
class ClassifierScorer(nn.Module):
    """Attribute scorer from any mmpretrain classifier (config + checkpoint).

    Turns generated images (``[N, C, H, W]`` RGB/grey in [0, 1]) into the
    classifier's input the way its data preprocessor would (grey -> 3
    channels, resize, x255, normalise) and returns its logits ``[N, K]`` (the
    last exit's for an OccamNet). Used as the target classifier ``h_t``
    (labels the synthetic images) or a protected-attribute classifier.

    Args:
        model (dict): Classifier config (e.g. the ``model`` of a training
            config, with its ``num_classes``).
        checkpoint (str, optional): Checkpoint of that classifier (an
            mmengine checkpoint or a bare state dict), loaded with
            ``weights_only=True``. Defaults to None (random weights: tests).
        input_size (int | Sequence[int], optional): Resize to this (H, W).
            Defaults to None (keep the size).
        in_channels (int): Channels the classifier expects. Defaults to 3.
        mean (Sequence[float]): Normalisation mean on the 0-255 scale.
            Defaults to ``(127.5, 127.5, 127.5)``.
        std (Sequence[float]): Normalisation std. Defaults to
            ``(127.5, 127.5, 127.5)``.
        score_class (int, optional): Return the softmax probability of this
            class (``[N]``, a binary attribute score) instead of the logits.
            Defaults to None.
    """

    def __init__(self, model: dict, checkpoint: Optional[str] = None,
                 input_size=None, in_channels: int = 3,
                 mean: Sequence[float] = (127.5, 127.5, 127.5),
                 std: Sequence[float] = (127.5, 127.5, 127.5),
                 score_class: Optional[int] = None):
        super().__init__()
        self.score_class = score_class
        self.model = MODELS.build(model)
        if checkpoint is not None:
            state = torch.load(checkpoint, map_location='cpu',
                               weights_only=True)
            self.model.load_state_dict(state.get('state_dict', state))
        self.model.eval()
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.input_size = input_size
        self.in_channels = in_channels
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer('std', torch.tensor(std).view(1, -1, 1, 1))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> logits ``[N, K]`` (or ``[N]`` scores)."""
        x = images.float()
        if x.size(1) == 1 and self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if x.size(1) != self.in_channels:
            raise ValueError(
                f'ClassifierScorer: images have {x.size(1)} channels, the '
                f'classifier expects in_channels={self.in_channels}')
        if self.input_size is not None and tuple(
                x.shape[-2:]) != tuple(self.input_size):
            x = F.interpolate(x, size=tuple(self.input_size),
                              mode='bilinear', align_corners=False)
        x = (x * 255.0 - self.mean) / self.std
        self.model.eval()
        out = self.model(x, mode='tensor')
        logits = out[-1] if isinstance(out, (tuple, list)) else out
        if self.score_class is not None:
            return logits.softmax(dim=1)[:, self.score_class]
        return logits
