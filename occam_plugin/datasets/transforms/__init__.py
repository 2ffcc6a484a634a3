from .formatting import BIAS_KEYS, PackBiasInputs
from .loading import LoadImageFromFileChecked

__all__ = ['BIAS_KEYS', 'PackBiasInputs', 'LoadImageFromFileChecked']
