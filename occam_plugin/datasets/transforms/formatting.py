from typing import Sequence

from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import TRANSFORMS

__all__ = ['PackBiasInputs', 'BIAS_KEYS']

#: the per-sample bias annotations every biased dataset provides (see
#: docs/architecture.md)
BIAS_KEYS = ('group_idx', 'bias_label', 'bias_aligned', 'bias_factors',
             'bias_factors_aligned')


@TRANSFORMS.register_module()
class PackBiasInputs(PackInputs):
    """``PackInputs`` that also packs the bias annotations of a sample.

    Keys absent from a sample are skipped, so the same pipeline serves biased
    and unbiased datasets.

    Args:
        input_key (str): The key of the model input. Defaults to ``'img'``.
        algorithm_keys (Sequence[str]): Extra data fields to pack.
            Defaults to :data:`BIAS_KEYS`.
        meta_keys (Sequence[str]): Meta keys to pack. Defaults to the ones of
            ``PackInputs``.
    """

    def __init__(self,
                 input_key: str = 'img',
                 algorithm_keys: Sequence[str] = BIAS_KEYS,
                 meta_keys: Sequence[str] = PackInputs.DEFAULT_META_KEYS):
        super().__init__(input_key=input_key, algorithm_keys=algorithm_keys,
                         meta_keys=meta_keys)
