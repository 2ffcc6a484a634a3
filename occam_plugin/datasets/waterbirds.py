"""Waterbirds as kohpangwei/group_DRO publishes it."""
from .bias_annotated_dataset import BiasAnnotatedDataset, register_layout
from .bias_annotation_utils import SPLITS_012

__all__ = ['Waterbirds']


@register_layout('waterbirds')
class Waterbirds(BiasAnnotatedDataset):
    """``format='waterbirds'``: group_DRO's Waterbirds folder.

    group_DRO's ``data/cub_dataset.py`` reads ``<root>/metadata.csv``
    (``img_id,img_filename,y,split,place,place_filename``, split 0/1/2 =
    train/val/test) and the images ``<root>/<img_filename>``. Classes
    landbird / waterbird, attribute ``place`` (land / water), aligned when
    the place is the bird's: 4 groups (``landbird/land`` ...,
    ``group = 2 y + place``).

    Args:
        **kwargs: The arguments of :class:`BiasAnnotatedDataset`, which
            override the defaults of this layout.
    """

    ANN_FILE = 'metadata.csv'
    COLUMNS = dict(img='img_filename', label='y', split='split',
                   attributes=['place'])
    SPLIT_VALUES = SPLITS_012
    LABEL_VALUES = {0: 'landbird', 1: 'waterbird'}
    ATTRIBUTE_VALUES = dict(place={0: 'land', 1: 'water'})
    ALIGNED = dict(place={'landbird': 'land', 'waterbird': 'water'})
