"""FLOPs to reach and compute each exit of an OccamNet (for ``ExitMetric``).

The counts come from a flop profile: the per-stage, per-exit and
compute-all FLOPs of one image, measured once per input shape with
mmengine's ``FlopAnalyzer`` (``measure_flop_profile`` in
``classifiers/dynamic_exit.py``; one fused multiply-add = one FLOP) and kept
by ``OccamClassifier.flop_profile``. This module only sums a profile it is
given::

    F_k = sum(stage_0..k) + sum(exit_j for first_exit <= j <= k)

i.e. what dynamic inference spends on a sample that leaves at exit ``k``:
the backbone stages up to ``k`` and the exit blocks, CAMs and gates it
evaluates on the way (exits below ``min_inference_exit`` are never used at
inference, so they are not run; ``include_unused_exits=True`` counts them as
well). ``full`` is the whole OccamNet computed at once (backbone + every
exit), the reference of ``exit/expected_compute``.

When the backbone cannot be run stage by stage the profile has no stages
and the per-exit FLOPs are unavailable: ``exit`` is ``None`` (never ``full``
for every exit, which would make ``exit/expected_compute`` a meaningless
1.0); ``full`` is still measured.
"""
from typing import Dict, List, Sequence

import torch

__all__ = ['exit_flops']


def cumulative_exit_flops(profile: Dict[str, object],
                          first_exit: int = 0) -> Dict[str, object]:
    """Cumulative FLOPs per exit from a flop profile.

    Args:
        profile (dict): ``stage`` and ``exit`` (FLOPs of each backbone stage
            and of each exit; empty when the backbone cannot be split) and
            ``compute_all`` (the whole network).
        first_exit (int): The first exit that is computed (the head's
            ``min_inference_exit``; 0 counts every exit). Defaults to 0.

    Returns:
        dict: ``exit`` (list of ``F_k``; ``None`` when the profile has no
        stages), ``full`` (whole network), ``stage`` and ``exit_block``
        (the raw per-stage / per-exit counts).
    """
    full = float(profile['compute_all'])
    if not profile['stage']:  # backbone runs whole: F_k unknown
        return dict(exit=None, full=full, stage=[], exit_block=[])
    cumulative: List[float] = []
    total = 0.0
    for k, (stage, exit_block) in enumerate(
            zip(profile['stage'], profile['exit'])):
        total += stage
        if k >= first_exit:
            total += exit_block
        cumulative.append(float(total))
    return dict(exit=cumulative, full=full,
                stage=[float(s) for s in profile['stage']],
                exit_block=[float(e) for e in profile['exit']])


def exit_flops(model: torch.nn.Module,
               input_shape: Sequence[int],
               include_unused_exits: bool = False) -> Dict[str, object]:
    """Cumulative FLOPs per exit of a built ``OccamClassifier``: its
    profile for ``input_shape`` (``model.flop_profile``, measured once per
    shape) summed by :func:`cumulative_exit_flops`.

    Args:
        model (nn.Module): The OccamClassifier (unwrapped from DDP).
        input_shape (Sequence[int]): One image's ``(C, H, W)`` after the
            pipeline (the data preprocessor does not resize).
        include_unused_exits (bool): Also count the exits below
            ``head.min_inference_exit``. Defaults to False.

    Returns:
        dict: As :func:`cumulative_exit_flops`.
    """
    head = getattr(model, 'head', None)
    if head is None or not hasattr(head, 'num_exits') or not hasattr(
            model, 'flop_profile'):
        raise TypeError(f'exit_flops: expected an OccamClassifier (a model '
                        f'with an OccamHead), got {type(model).__name__}')
    if len(input_shape) != 3:
        raise ValueError(f'exit_flops: input_shape={tuple(input_shape)}; '
                         'expected one image (C, H, W)')
    profile = model.flop_profile(tuple(int(s) for s in input_shape))
    first = 0 if include_unused_exits else head.min_inference_exit
    return cumulative_exit_flops(profile, first)
