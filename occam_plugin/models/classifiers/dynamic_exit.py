"""Exit-aware inference that really skips work (``inference_mode='dynamic'``)
and the FLOP profile it is counted with.

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

FLOPs are measured with mmengine's ``FlopAnalyzer`` (one fused multiply-add
= one FLOP; ops it has no counter for, e.g. sigmoid, count 0) on one sample
by :func:`measure_flop_profile`: per backbone stage (:class:`StagePart`) and
per exit (:class:`ExitPart`: exit block, CAM conv, GAP, gate). The caller
keeps the profile (``OccamClassifier.flop_profile``, one per input shape)
and hands it to :func:`dynamic_predict`; nothing here calls back into the
classifier. A sample's ``flops`` = the stages it ran + the exits computed
for it. In compute-all mode ``flops`` is the measured cost of the whole
forward (the backbone as it runs, all exits) for every sample.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.structures import DataSample

from ..utils.stages import BackboneStages, take_samples

__all__ = [
    'StagePart', 'ExitPart', 'measure_flops', 'stage_runner',
    'warn_compute_all', 'log_unstaged', 'measure_flop_profile',
    'dynamic_predict', 'check_inference_mode'
]

INFERENCE_MODES = ('compute_all', 'dynamic')


class StagePart(nn.Module):
    """Stage ``k`` of a backbone description, as a module (FlopAnalyzer
    traces modules; the backbone is a child, so its weights are seen as
    parameters)."""

    def __init__(self, stages: BackboneStages, k: int):
        super().__init__()
        self.backbone = stages.backbone
        self.stages, self.k = stages, k

    def forward(self, carry):
        return self.stages.run_stage(self.k, carry)


class ExitPart(nn.Module):
    """Exit ``k`` alone, as a module: the exit block of the neck, then the
    head's CAM, logits and gate (as ``forward_exits`` computes them)."""

    def __init__(self, neck: nn.Module, head: nn.Module, k: int):
        super().__init__()
        self.neck, self.head, self.k = neck, head, k

    def forward(self, feat: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.head.forward_exit(self.k,
                                     self.neck.forward_exit(self.k, feat))
        # return everything: the tracer drops what is not returned
        return out['cam'], out['logits'], out['gate']


def measure_flops(module: nn.Module, x) -> int:
    """FLOPs of ``module(x)`` as counted by mmengine's ``FlopAnalyzer``."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(module, (x, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return int(analyzer.total())


def stage_runner(model) -> Optional[BackboneStages]:
    """The model's backbone description if it runs the exits stage by stage
    (one stage per exit), else None."""
    stages = model.backbone_stages
    if stages.runnable and stages.num_stages == model.head.num_exits:
        return stages
    return None


def _unstaged_reason(model) -> str:
    stages = model.backbone_stages
    problem = ('cannot run it stage by stage (no StageDescriber knows its '
               'forward)' if not stages.runnable else
               f'{stages.num_stages} stages for {model.head.num_exits} exits')
    return f'{stages.kind}: {problem}'


def warn_compute_all(model) -> None:
    """Dynamic inference asked of a model whose backbone cannot be split."""
    import warnings
    warnings.warn(f'dynamic exit: {_unstaged_reason(model)}; '
                  'falling back to compute-all.')


def log_unstaged(model) -> None:
    """Say once (at build time) what a backbone that cannot be split gives:
    no savings, no per-exit FLOPs."""
    from mmengine.logging import print_log
    print_log(f'OccamClassifier: {_unstaged_reason(model)}; every exit '
              'computes the whole network, so dynamic inference saves '
              'nothing and per-exit FLOPs are unavailable (ExitMetric leaves '
              'exit/expected_compute out). A StageDescriber for the family '
              '(occam_plugin/models/utils/stages.py) makes it stageable.',
              logger='current', level=30)


@torch.no_grad()
def measure_flop_profile(model, img_shape: Sequence[int]
                         ) -> Dict[str, List[int]]:
    """Per-stage and per-exit FLOPs for one image of ``img_shape`` (C, H, W).

    Returns ``dict(stage=[...], exit=[...], compute_all=int)``; ``stage``
    and ``exit`` are empty when the backbone cannot be split. If the model
    cannot be traced, every count is NaN (one warning) and inference goes on.
    Runs the model in eval mode (its mode is restored after).
    """
    was_training = model.training
    model.eval()
    staged = stage_runner(model)
    exits = [ExitPart(model.neck, model.head, k)
             for k in range(model.head.num_exits)]
    try:
        param = next(model.parameters())
        x = torch.zeros((1, ) + tuple(img_shape), device=param.device,
                        dtype=param.dtype)
        feats = model.extract_feat(x, stage='backbone')
        profile = dict(
            stage=[], exit=[],
            compute_all=measure_flops(model.backbone, x) + sum(
                measure_flops(part, f) for part, f in zip(exits, feats)))
        if staged is not None:
            carry = x
            for k, part in enumerate(exits):
                profile['stage'].append(
                    measure_flops(StagePart(staged, k), carry))
                carry, feat = staged.run_stage(k, carry)
                profile['exit'].append(measure_flops(part, feat))
    except Exception as err:  # FLOPs are a report, never a failure
        import warnings
        warnings.warn(f'dynamic exit: FlopAnalyzer could not measure '
                      f'{type(model).__name__} ({err!r}); flops = NaN.')
        n = staged.num_stages if staged is not None else 0
        nan = float('nan')
        profile = dict(stage=[nan] * n, exit=[nan] * n, compute_all=nan)
    finally:
        model.train(was_training)
    return profile


@torch.no_grad()
def dynamic_predict(model, inputs: torch.Tensor, profile: Dict[str, list],
                    data_samples: Optional[List[DataSample]] = None
                    ) -> List[DataSample]:
    """Stage-by-stage prediction of a model whose backbone can be split
    (:func:`stage_runner` is not None).

    Args:
        model: An ``OccamClassifier`` (``backbone_stages``, ``neck``,
            ``head`` with ``num_exits``, ``min_inference_exit``,
            ``exit_threshold``, ``use_gates``).
        inputs (Tensor): Preprocessed images ``[N, C, H, W]``.
        profile (dict): The model's FLOP profile for one image of
            ``inputs.shape[1:]`` (:func:`measure_flop_profile`).
        data_samples (list[DataSample], optional): Filled in place.
    """
    staged = stage_runner(model)
    head = model.head
    num_exits, n = head.num_exits, inputs.shape[0]
    # without gates only the last exit is ever chosen: skip all the others
    first = head.min_inference_exit if head.use_gates else num_exits - 1

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
        _, logits, gate = ExitPart(model.neck, head, k)(feat)
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
