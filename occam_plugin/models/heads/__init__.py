from .occam_head import OccamHead

__all__ = ['OccamHead']
from .method_linear_cls_head import MethodLinearClsHead  # noqa: F401
