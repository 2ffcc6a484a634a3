from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper, cpu_bf16_flags

__all__ = ['CPUAmpOptimWrapper', 'cpu_bf16_flags']
