from .occam_head import OccamHead
from .method_linear_cls_head import MethodLinearClsHead
from .method_plug_point import MethodPlugPoint

__all__ = ['OccamHead', 'MethodLinearClsHead', 'MethodPlugPoint']
