"""The ``metadata.csv`` of YyzHarry/SubpopBench."""
from .bias_annotated_dataset import BiasAnnotatedDataset, register_layout
from .bias_annotation_utils import SPLITS_012

__all__ = ['SubpopBench']


@register_layout('subpopbench')
class SubpopBench(BiasAnnotatedDataset):
    """``format='subpopbench'``: a dataset as SubpopBench prepares it.

    ``<root>/metadata.csv`` = ``id,filename,split,y,a`` (split 0/1/2), the
    images ``<root>/<filename>``; the values are those found in the file,
    ``group = (number of a values) y + a``.

    Args:
        **kwargs: The arguments of :class:`BiasAnnotatedDataset`, which
            override the defaults of this layout.
    """

    ANN_FILE = 'metadata.csv'
    COLUMNS = dict(img='filename', label='y', split='split',
                   attributes=['a'])
    SPLIT_VALUES = SPLITS_012
