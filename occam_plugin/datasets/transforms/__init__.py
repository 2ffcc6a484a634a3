from .formatting import BIAS_KEYS, PackBiasInputs

__all__ = ['BIAS_KEYS', 'PackBiasInputs']
from .loading import LoadImageFromFileChecked  # noqa: F401,E402
