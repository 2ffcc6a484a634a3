from .cam_suppression_loss import CAMSuppressionLoss
from .exit_gate_loss import ExitGateLoss
from .gate_weighted_ce_loss import GateWeightedCELoss
from .generalized_ce_loss import GeneralizedCELoss  # noqa: F401
from .group_dro import GroupDRO  # noqa: F401
from .group_upweighting import GroupUpweighting  # noqa: F401
from .pgi_loss import PGILoss  # noqa: F401
from .spectral_decoupling import SpectralDecoupling  # noqa: F401

__all__ = [
    'CAMSuppressionLoss', 'ExitGateLoss', 'GateWeightedCELoss',
    'GeneralizedCELoss', 'GroupDRO', 'GroupUpweighting', 'PGILoss',
    'SpectralDecoupling'
]
