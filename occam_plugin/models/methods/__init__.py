from .base_method import BaseMethod
from .group_dro import GroupDRO
from .group_upweighting import GroupUpweighting
from .pgi_loss import PGILoss
from .spectral_decoupling import SpectralDecoupling

__all__ = [
    'BaseMethod', 'GroupDRO', 'GroupUpweighting', 'PGILoss',
    'SpectralDecoupling'
]
