import copy
from typing import Optional

import torch.nn as nn
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from ..utils.stages import describe_backbone, image_channels

__all__ = ['PlainClassifier']


@MODELS.register_module()
class PlainClassifier(ImageClassifier):
    """The plain classifier that every bias-mitigation method composes with.

    An ``ImageClassifier`` whose head's ``in_channels`` is read from the
    backbone when the config leaves it out (the channels of the last map the
    backbone returns; the neck must keep them, as ``GlobalAveragePooling``
    does), so a backbone swap or a width change edits only ``backbone=``,
    as with ``OccamClassifier``. With ``MethodLinearClsHead`` as its head
    (the default in ``configs/_base_/models/resnet18.py``) a method is one
    config line, ``model.head.method=dict(type=...)``, as on an OccamNet.

    Args:
        backbone (dict): Backbone config.
        neck (dict, optional): Neck config (``GlobalAveragePooling``).
        head (dict, optional): Head config; ``in_channels`` is filled in when
            missing or None.
        probe_size (int): Image side of the dry run for backbones whose
            channels cannot be read off. Defaults to 64.
        **kwargs: The other ``ImageClassifier`` arguments
            (``data_preprocessor``, ``train_cfg``, ``init_cfg``, ...).
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 probe_size: int = 64,
                 **kwargs):
        if isinstance(head, dict) and head.get('in_channels') is None:
            if not isinstance(backbone, nn.Module):
                backbone = MODELS.build(backbone)
            head = copy.deepcopy(head)
            head['in_channels'] = describe_backbone(
                backbone,
                in_channels=image_channels(kwargs.get('data_preprocessor')),
                img_size=probe_size, min_maps=1).channels[-1]
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)
