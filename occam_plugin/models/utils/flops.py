"""FLOPs to reach and compute each exit of an OccamNet (for ``ExitMetric``).

Per-stage and per-exit counts come from mmengine's ``FlopAnalyzer`` through
``OccamClassifier``'s own profile (``OccamClassifier.flop_profile``, measured
by :func:`..classifiers.dynamic_exit.measure_flop_profile`: one image, one
fused multiply-add = one FLOP). From them::

    F_k = sum(stage_0..k) + sum(exit_j for min_inference_exit <= j <= k)

i.e. what dynamic inference spends on a sample that leaves at exit ``k``:
the backbone stages up to ``k`` and the exit blocks, CAMs and gates it
evaluates on the way (exits below ``min_inference_exit`` are never used at
inference, so they are not run; ``include_unused_exits=True`` counts them as
well). ``full`` is the whole OccamNet computed at once (backbone + every
exit), the reference of ``exit/expected_compute``.

The stages are the ones of the backbone's description (``BackboneStages``
in ``stages.py``, the same one the exits were built from). When the backbone
cannot be run stage by stage, the per-exit FLOPs are unavailable: ``exit``
is ``None`` (never ``full`` for every exit, which would make
``exit/expected_compute`` a meaningless 1.0); ``full`` is still measured.
"""
from typing import Dict, List, Sequence

import torch

__all__ = ['exit_flops']


def exit_flops(model: torch.nn.Module,
               input_shape: Sequence[int],
               include_unused_exits: bool = False) -> Dict[str, object]:
    """Cumulative FLOPs per exit of a built ``OccamClassifier``.

    Args:
        model (nn.Module): The OccamClassifier (unwrapped from DDP).
        input_shape (Sequence[int]): One image's ``(C, H, W)`` after the
            pipeline (the data preprocessor does not resize).
        include_unused_exits (bool): Also count the exits below
            ``head.min_inference_exit``. Defaults to False.

    Returns:
        dict: ``exit`` (list of ``F_k``; ``None`` when the backbone cannot
        be run stage by stage), ``full`` (whole network),
        ``stage`` and ``exit_block`` (the raw per-stage / per-exit counts).
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
    full = float(profile['compute_all'])
    num_exits = head.num_exits
    if not profile['stage']:  # backbone runs whole: F_k unknown
        return dict(exit=None, full=full, stage=[], exit_block=[])
    first = 0 if include_unused_exits else head.min_inference_exit
    cumulative: List[float] = []
    total = 0.0
    for k in range(num_exits):
        total += profile['stage'][k]
        if k >= first:
            total += profile['exit'][k]
        cumulative.append(float(total))
    return dict(exit=cumulative, full=full,
                stage=[float(s) for s in profile['stage']],
                exit_block=[float(e) for e in profile['exit']])
