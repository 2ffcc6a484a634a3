"""Exit-aware inference that really skips work (``inference_mode='dynamic'``).

The backbone runs stage by stage (``BackboneStages`` in ``utils/stages.py``,
the description the exits were built from). After stage ``k``
the exit ``k`` is computed only for samples still running and only for
``k >= min_inference_exit`` (earlier exits are never used at inference, so
dynamic mode does not compute them at all). Samples whose gate is
``>= exit_threshold`` are finished; the rest go on, so the batch shrinks and
a batch of one stops as soon as its sample exits. Every sample's result is
the one compute-all gives (same modules on the same inputs, same exit rule as
``OccamHead.select_exits``).

Per-exit fields of exits a sample never reached (and of exits below
``min_inference_exit``) are NaN: ``exit_scores[k]`` (a row of C NaNs) and
``exit_gates[k]``. ``pred_label``, ``pred_score`` and ``exit_idx`` are always
set, and so is ``flops``: the FLOPs spent on that sample (see below).

FLOPs are measured once per input shape with mmengine's ``FlopAnalyzer``
(one fused multiply-add = one FLOP; ops it has no counter for, e.g. sigmoid,
count 0) on one sample: per backbone stage and per exit (exit block, CAM
conv, GAP, gate). A sample's ``flops`` = the stages it ran + the exits
computed for it. In compute-all mode ``flops`` is the measured cost of the
whole forward (backbone as it runs, all exits) for every sample.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.structures import DataSample

from ..utils.stages import BackboneStages, describe_backbone, take_samples

INFERENCE_MODES = ('compute_all', 'dynamic')


class _Call(nn.Module):
    """Wrap a callable as a module so FlopAnalyzer can trace it.

    ``owner`` (the module whose parameters ``fn`` uses) becomes a child, so
    the tracer sees those parameters as parameters, not as constants.
    """

    def __init__(self, fn, owner: nn.Module):
        super().__init__()
        self.fn = fn
        self.owner = owner

    def forward(self, x):
        return self.fn(x)


def measure_flops(fn, x, owner: nn.Module) -> int:
    """FLOPs of ``fn(x)`` as counted by mmengine's ``FlopAnalyzer``.

    ``owner`` must contain every module ``fn`` calls.
    """
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(_Call(fn, owner), (x, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return int(analyzer.total())


def head_exit(head, k: int, h: torch.Tensor
              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CAM, logits and gate of exit ``k`` alone (as ``forward_exits``)."""
    if callable(getattr(head, 'forward_exit', None)):
        out = head.forward_exit(k, h)
        return out['cam'], out['logits'], out['gate']
    cam = head.cam_convs[k](h)
    logits = cam.mean(dim=(2, 3))
    if head.use_gates:
        gate = torch.sigmoid(head.gates[k](h.detach().mean(
            dim=(2, 3)))).squeeze(1)
    else:  # OccamHead without gates: "continue" everywhere but the last exit
        gate = h.new_full((h.shape[0], ), float(k == head.num_exits - 1))
    return cam, logits, gate


def get_staged_backbone(model) -> Optional[BackboneStages]:
    """The model's backbone description if it runs stage by stage, else
    None (one warning; the caller computes everything)."""
    cached = model.__dict__.get('_staged_backbone_cache', False)
    if cached is False or (cached is not None
                           and cached.backbone is not model.backbone):
        # OccamClassifier keeps the description it built its exits from
        cached = getattr(model, 'backbone_stages', None)
        if cached is None or cached.backbone is not model.backbone:
            cached = describe_backbone(model.backbone)
        problem = None
        if not cached.runnable:
            problem = 'cannot run it stage by stage (unknown forward)'
        elif cached.num_stages != model.head.num_exits:
            problem = (f'{cached.num_stages} stages for '
                       f'{model.head.num_exits} exits')
        if problem is not None:
            import warnings
            warnings.warn(f'dynamic exit: {cached.kind}: {problem}; '
                          'falling back to compute-all.')
            cached = None
        model.__dict__['_staged_backbone_cache'] = cached
    return cached


def _cache(model) -> dict:
    return model.__dict__.setdefault('_flops_cache', {})


@torch.no_grad()
def flop_profile(model, img_shape: Sequence[int]) -> Dict[str, List[int]]:
    """Per-stage and per-exit FLOPs for one image of ``img_shape`` (C, H, W).

    Returns ``dict(stage=[...], exit=[...], compute_all=int)``; ``stage``
    and ``exit`` are empty when the backbone cannot be split. If the model
    cannot be traced, every count is NaN (one warning) and inference goes on.
    """
    key = tuple(int(s) for s in img_shape)
    cache = _cache(model)
    if key in cache:
        return cache[key]
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        x = torch.zeros((1, ) + key, device=param.device, dtype=param.dtype)
        head, neck = model.head, model.neck

        def whole(img):
            out = head.forward_exits(neck(model.backbone(img)))
            # return everything: the tracer drops what is not returned
            return tuple(out['cams']) + tuple(out['logits']) + tuple(
                out['gates'])

        staged = get_staged_backbone(model)
        try:
            profile = dict(stage=[], exit=[],
                           compute_all=measure_flops(whole, x, model))
            if staged is not None:
                carry = x
                for k in range(staged.num_stages):

                    def stage(c, k=k):
                        return staged.run_stage(k, c)

                    def one_exit(f, k=k):
                        return head_exit(head, k, neck.exit_forward(k, f))

                    profile['stage'].append(measure_flops(stage, carry, model))
                    carry, feat = staged.run_stage(k, carry)
                    profile['exit'].append(
                        measure_flops(one_exit, feat, model))
        except Exception as err:  # FLOPs are a report, never a failure
            import warnings
            warnings.warn(f'dynamic exit: FlopAnalyzer could not measure '
                          f'{type(model).__name__} ({err!r}); flops = NaN.')
            n = staged.num_stages if staged is not None else 0
            nan = float('nan')
            profile = dict(stage=[nan] * n, exit=[nan] * n, compute_all=nan)
    finally:
        model.train(was_training)
    cache[key] = profile
    return profile


def set_compute_all_flops(model, inputs: torch.Tensor,
                          data_samples: List[DataSample]) -> None:
    """Compute-all spends the whole network on every sample: record it."""
    flops = float(flop_profile(model, inputs.shape[1:])['compute_all'])
    for ds in data_samples:
        ds.set_field(flops, 'flops', field_type='metainfo')


@torch.no_grad()
def dynamic_predict(model, inputs: torch.Tensor,
                    data_samples: Optional[List[DataSample]] = None
                    ) -> Optional[List[DataSample]]:
    """Stage-by-stage prediction; None when the backbone cannot be split.

    Args:
        model: An ``OccamClassifier`` (``backbone``, ``neck.exit_forward``,
            ``head`` with ``num_exits``, ``min_inference_exit``,
            ``exit_threshold``, ``use_gates``).
        inputs (Tensor): Preprocessed images ``[N, C, H, W]``.
        data_samples (list[DataSample], optional): Filled in place.
    """
    staged = get_staged_backbone(model)
    if staged is None:
        return None
    head, neck = model.head, model.neck
    num_exits, n = head.num_exits, inputs.shape[0]
    # without gates only the last exit is ever chosen: skip all the others
    first = head.min_inference_exit if head.use_gates else num_exits - 1
    profile = flop_profile(model, inputs.shape[1:])

    nan = float('nan')
    scores: Optional[torch.Tensor] = None  # N, E, C once C is known
    gates = inputs.new_full((n, num_exits), nan)
    exit_idx = torch.full((n, ), -1, dtype=torch.long, device=inputs.device)
    spent = torch.zeros(n, dtype=torch.float64)  # FLOPs per sample (CPU)
    active = torch.arange(n, device=inputs.device)
    carry = inputs
    for k in range(num_exits):
        carry, feat = staged.run_stage(k, carry)
        spent[active.cpu()] += profile['stage'][k]
        if k < first:
            continue
        _, logits, gate = head_exit(head, k, neck.exit_forward(k, feat))
        spent[active.cpu()] += profile['exit'][k]
        if scores is None:
            scores = logits.new_full((n, num_exits, logits.shape[1]), nan)
        scores[active, k] = F.softmax(logits, dim=1)
        gates[active, k] = gate.to(gates.dtype)
        if k == num_exits - 1:
            done = torch.ones_like(gate, dtype=torch.bool)
        else:
            done = gate >= head.exit_threshold
        exit_idx[active[done]] = k
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            active = active[keep]
            carry = take_samples(carry, keep)

    results = head.pack_predictions(scores, gates, exit_idx, data_samples)
    for ds, cost in zip(results, spent.tolist()):
        ds.set_field(float(cost), 'flops', field_type='metainfo')
    return results


def check_inference_mode(mode: str) -> str:
    """Validate the ``inference_mode`` config value."""
    if mode not in INFERENCE_MODES:
        raise ValueError(f'OccamClassifier: inference_mode={mode!r}; expected '
                         f'one of {INFERENCE_MODES} (model.inference_mode in '
                         'the config).')
    return mode
