from .exit_neck import ExitNeck

__all__ = ['ExitNeck']
