from .occam_head import OccamHead

__all__ = ['OccamHead']
from .debias_cls_head import DebiasLinearClsHead  # noqa: F401
