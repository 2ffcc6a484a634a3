from .mlp import MLPBackbone

__all__ = ['MLPBackbone']
