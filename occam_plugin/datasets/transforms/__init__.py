from .formatting import BIAS_KEYS, PackBiasInputs

__all__ = ['BIAS_KEYS', 'PackBiasInputs']
