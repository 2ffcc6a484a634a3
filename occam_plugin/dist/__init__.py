"""Distributed runs: the one reduction ``mmengine.dist`` lacks
(:mod:`.collectives`) and the gloo set-up of a CPU-only multi-process run
(:mod:`.cpu_launch`)."""
from .collectives import all_gather_rows
from .cpu_launch import CPU_MODEL_WRAPPER_CFG, setup_cpu_distributed

__all__ = ['all_gather_rows', 'CPU_MODEL_WRAPPER_CFG', 'setup_cpu_distributed']
