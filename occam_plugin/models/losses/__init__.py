from .cam_suppression_loss import CAMSuppressionLoss
from .exit_gate_loss import ExitGateLoss
from .gate_weighted_ce_loss import GateWeightedCELoss
from .generalized_ce_loss import GeneralizedCELoss

__all__ = [
    'CAMSuppressionLoss', 'ExitGateLoss', 'GateWeightedCELoss',
    'GeneralizedCELoss'
]
