"""DFR, Deep Feature Reweighting (Kirichenko et al., ICLR 2023): a trained
model's trunk frozen, its last layer(s) retrained on group-balanced
held-out (val) data with an L1-regularised logistic regression.

As the reference's "DFR on validation" (PolinaKirichenko/
deep_feature_reweighting, ``dfr_evaluate_spurious.py``,
``balance_dfr_val=True``, ``notrain_dfr_val=True``):

1. **C chosen on half of val**: val split in two halves; the first half
   group-balanced (every group cut to the smallest group's size, samples
   drawn at random), features standardised on it; for each C of
   :data:`C_OPTIONS` a fit on it, scored by the worst-group accuracy on the
   other half; the best C (the first of the list on a tie, as
   ``np.argmax``).
2. **Final fit on all of val**: ``num_retrains`` (20) fits with that C, each
   on a fresh group-balanced subset of all of val, features standardised
   with the training set's statistics; the weights and biases averaged.

The standardisation is folded into the layer (``W / sigma`` and ``b - W mu
/ sigma``), so the retrained model has the architecture of the trained one
and loads strictly. Our differences, and why: the halves are split per
group (each group's samples halved), so a small group is in both halves
(the reference's plain random halves can leave it out of one). The
logistic regression is the reference's: scikit-learn's L1
``LogisticRegression`` with the ``liblinear`` solver (:mod:`.l1_logistic`;
one-vs-rest for more than two classes).

Which layers (:func:`last_layers`): a linear head's ``fc`` (on the pooled
features); on an OccamNet, the 1x1 CAM conv of every exit used at inference
(``min_inference_exit`` .. last), each on the spatial mean of its own exit's
features (the exit's logits are the mean of its CAM, a linear map of that
mean), so the CAMs and the gates that pick the exit stay as they were; exit
0 (the bias-amplified one, not used at inference) is left alone. An
``LfFClassifier``: its debiased model's head (``model.head``).
"""
import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..extras import require_extra
from .l1_logistic import _FEATURE, fit_l1_logistic

__all__ = [
    'balanced_subset', 'stratified_halves', 'group_accuracy', 'check_options',
    'check_balance_keys', 'Scaler', 'dfr_fit', 'last_layers',
    'extract_features', 'set_layer', 'check_writable', 'run_dfr', 'C_OPTIONS',
    'NUM_RETRAINS'
]

#: the reference's C grid (Waterbirds; ``dfr_evaluate_spurious.py``)
C_OPTIONS = (1., 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
#: the reference's number of balanced subsets averaged in the final fit
NUM_RETRAINS = 20


# ------------------------------------------------------------ subsets
def balanced_subset(keys: np.ndarray, rng: np.random.Generator
                    ) -> np.ndarray:
    """Indices of a subset with ``min_g n_g`` samples of every key value
    present (group or class), drawn without replacement; sorted."""
    keys = np.asarray(keys)
    values = np.unique(keys)
    per = [np.flatnonzero(keys == v) for v in values]
    m = min(len(p) for p in per)
    return np.sort(np.concatenate([rng.permutation(p)[:m] for p in per]))


def stratified_halves(keys: np.ndarray, rng: np.random.Generator
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """``(fit, score)`` index halves: each key's samples shuffled, the
    first ``ceil(n_g / 2)`` to ``fit``, the rest to ``score``."""
    keys = np.asarray(keys)
    fit, score = [], []
    for v in np.unique(keys):
        p = rng.permutation(np.flatnonzero(keys == v))
        k = (len(p) + 1) // 2
        fit.append(p[:k])
        score.append(p[k:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(score))


def group_accuracy(pred: np.ndarray, y: np.ndarray, keys: np.ndarray
                   ) -> Dict[str, float]:
    """Accuracy, per key value, worst and mean over the key values, in
    percent (as ``BiasMetric``)."""
    pred, y, keys = map(np.asarray, (pred, y, keys))
    per = {int(v): 100.0 * float((pred == y)[keys == v].mean())
           for v in np.unique(keys)}
    return dict(acc=100.0 * float((pred == y).mean()) if len(y) else 0.0,
                per_group=per, worst=min(per.values()) if per else 0.0,
                mean=float(np.mean(list(per.values()))) if per else 0.0)


#: the fewest samples of each group (or class) DFR can balance over: the
#: halves that choose C need one in each
MIN_PER_GROUP = 2


def check_options(c_options: Sequence[float], num_retrains: int) -> None:
    """Raise ValueError, naming the option, unless the C grid is a
    non-empty list of positive numbers and ``num_retrains`` an integer
    >= 1 (checked before any feature is extracted).

    Args:
        c_options (Sequence[float]): The C grid.
        num_retrains (int): Balanced subsets averaged in the final fit.
    """
    try:
        grid = [float(c) for c in c_options]
    except (TypeError, ValueError):
        raise ValueError(f'DFR: c_options={c_options!r}; expected a list of '
                         'positive numbers (e.g. --c 1 0.1 0.01)') from None
    if not grid or not all(np.isfinite(c) and c > 0 for c in grid):
        raise ValueError(f'DFR: c_options={list(c_options)!r}; expected a '
                         'non-empty list of positive numbers (C is the '
                         'inverse L1 strength)')
    if isinstance(num_retrains, bool) or not isinstance(
            num_retrains, (int, np.integer)) or num_retrains < 1:
        raise ValueError(f'DFR: num_retrains={num_retrains!r}; expected an '
                         'integer >= 1')


def check_balance_keys(keys: np.ndarray, num_keys: Optional[int] = None,
                       names: Optional[Sequence[str]] = None,
                       what: str = 'group', where: str = 'val set') -> None:
    """Raise ValueError unless every one of the ``num_keys`` groups (or
    classes) has at least :data:`MIN_PER_GROUP` samples: a missing group
    would make the balanced fit and its "worst group" cover only the others,
    a group of one sample leaves one half without it (every C then ties).

    Args:
        keys (ndarray): ``[n]`` group (or class) of each sample.
        num_keys (int, optional): How many there should be (the dataset's
            ``num_groups`` / classes); None: the largest id + 1.
        names (Sequence[str], optional): Their names, for the message.
        what (str): ``'group'`` or ``'class'``, for the message.
        where (str): The samples' set, for the message.
    """
    keys = np.asarray(keys, dtype=np.int64)
    if not len(keys):
        raise ValueError(f'DFR: the {where} has no sample')
    num = int(num_keys) if num_keys else int(keys.max()) + 1
    counts = np.bincount(keys, minlength=num)

    def label(k):
        return (f'{k} ({names[k]})' if names is not None and k < len(names)
                else str(k))
    missing = [label(k) for k in range(num) if counts[k] == 0]
    few = [f'{label(k)}: {counts[k]}' for k in range(num)
           if 0 < counts[k] < MIN_PER_GROUP]

    def listed(items, limit=10):  # many groups: the first ones and a count
        more = f', ... ({len(items) - limit} more)' if len(items) > limit \
            else ''
        return ', '.join(items[:limit]) + more
    if missing or few:
        parts = ([f'no sample of {what}(s) {listed(missing)}']
                 if missing else []) + (
            [f'too few samples in {what}(s) {listed(few)}'] if few
            else [])
        raise ValueError(
            f'DFR: the {where} has {"; ".join(parts)}; balancing over '
            f'all {num} {what}s needs at least {MIN_PER_GROUP} samples of '
            f'each (one in each half that chooses C). Use a split with '
            f'enough samples of every {what}'
            + (', or balance the classes (--balance class).'
               if what == 'group' else '.'))


# ------------------------------------------------------------ the fit
class Scaler:
    """sklearn's ``StandardScaler``: mean and std (ddof 0) per feature, a
    std of 0 taken as 1."""

    def __init__(self, X: torch.Tensor):
        X = X.double()
        self.mean = X.mean(0)
        std = X.std(0, unbiased=False)
        self.std = torch.where(std > 0, std, torch.ones_like(std))

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return (X.double() - self.mean) / self.std

    def fold(self, W: torch.Tensor, b: torch.Tensor
             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(W', b')`` with ``W' x + b' == W scaler(x) + b``."""
        W2 = W / self.std
        return W2, b - W2 @ self.mean


def _predict(W, b, X) -> np.ndarray:
    return (X @ W.T + b).argmax(1).numpy()


def dfr_fit(x: torch.Tensor, y: np.ndarray, keys: np.ndarray,
            num_classes: int, scaler_x: Optional[torch.Tensor] = None,
            c_options: Sequence[float] = C_OPTIONS,
            num_retrains: int = NUM_RETRAINS, seed: int = 0,
            max_iter: int = 100) -> dict:
    """DFR's two steps (module docstring) on held-out features.

    Args:
        x (Tensor): ``[n, d]`` held-out features.
        y (ndarray): ``[n]`` labels.
        keys (ndarray): ``[n]`` what is balanced (group, or class).
        num_classes (int): Classes of the layer.
        scaler_x (Tensor, optional): Features whose statistics standardise
            the final fit (the reference: the training set's); None: all
            of ``x``.
        c_options (Sequence[float]): The C grid.
        num_retrains (int): Balanced subsets averaged in the final fit.
        seed (int): Seed of the halves and subsets (and of liblinear's
            coordinate order).
        max_iter (int): liblinear's iteration cap per fit. Defaults to 100
            (scikit-learn's, as the reference).

    Returns:
        dict: ``weight`` ``[K, d]`` and ``bias`` ``[K]`` (float64, in the
        unstandardised feature space), ``C``, ``tuning`` (worst-group
        accuracy on the scoring half per C, in percent) and ``num_fit``
        (samples in each final balanced subset).

    Raises:
        ValueError: A bad option, or a key value (in ``0 .. max``) with
            fewer than 2 samples (:func:`check_balance_keys`).
    """
    check_options(c_options, num_retrains)
    check_balance_keys(keys, what='key', where='held-out set')
    rng = np.random.default_rng(seed)
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    fit_idx, score_idx = stratified_halves(keys, rng)
    fit_idx = fit_idx[balanced_subset(keys[fit_idx], rng)]
    scaler = Scaler(x[fit_idx])
    tuning = {}
    for c in c_options:
        W, b = fit_l1_logistic(scaler(x[fit_idx]), y_t[fit_idx],
                               num_classes, c, max_iter=max_iter,
                               random_state=seed)
        # every key has >= 2 samples (checked), so one in each half
        pred = _predict(W, b, scaler(x[score_idx]))
        tuning[float(c)] = group_accuracy(pred, y[score_idx],
                                          keys[score_idx])['worst']
    best = max(tuning.values())
    C = next(c for c in tuning if tuning[c] == best)
    scaler = Scaler(x if scaler_x is None else scaler_x)
    Ws, bs = [], []
    for _ in range(num_retrains):
        sub = balanced_subset(keys, rng)
        W, b = fit_l1_logistic(scaler(x[sub]), y_t[sub], num_classes, C,
                               max_iter=max_iter, random_state=seed)
        Ws.append(W)
        bs.append(b)
    W, b = scaler.fold(torch.stack(Ws).mean(0), torch.stack(bs).mean(0))
    return dict(weight=W, bias=b, C=C, tuning=tuning, num_fit=len(sub))


# ------------------------------------------------------------ the model
def last_layers(model: nn.Module, layers='auto'
                ) -> List[Tuple[str, nn.Module]]:
    """The layers DFR retrains, ``(name in the state dict, module)``.

    Args:
        model (nn.Module): A built classifier.
        layers (str | Sequence[str]): ``'auto'`` (module docstring: a
            linear head's ``fc``; an OccamNet's CAM convs of the exits used
            at inference) or module names (``'head.fc'``,
            ``'head.cam_convs.3'``), each an ``nn.Linear`` or a 1x1
            ``nn.Conv2d``.
    """
    names = {id(m): n for n, m in model.named_modules()}
    if layers == 'auto':
        head = getattr(model, 'head', None)
        if head is None or id(head) not in names:
            raise ValueError(f'DFR: {type(model).__name__} has no head '
                             'module; name the layers (dfr.layers).')
        prefix = names[id(head)]
        if hasattr(head, 'cam_convs'):
            first = int(getattr(head, 'min_inference_exit', 0))
            layers = [f'{prefix}.cam_convs.{k}'
                      for k in range(first, len(head.cam_convs))]
        elif isinstance(getattr(head, 'fc', None), nn.Linear):
            layers = [f'{prefix}.fc']
        else:
            raise ValueError(
                f'DFR: no last layer found on {type(head).__name__} (an '
                'fc Linear or OccamHead cam_convs); name the layers '
                "(dfr = dict(layers=['head.<module>'])).")
    modules = dict(model.named_modules())
    out = []
    for name in layers:
        module = modules.get(name)
        ok = isinstance(module, nn.Linear) or (
            isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
            and module.groups == 1)
        if not ok:
            raise ValueError(
                f'DFR: layer {name!r} is {type(module).__name__ if module is not None else "not in the model"}; '  # noqa: E501
                'expected an nn.Linear or a 1x1 nn.Conv2d')
        out.append((name, module))
    return out


def extract_features(model: nn.Module, loader,
                     layers: Sequence[Tuple[str, nn.Module]]
                     ) -> Tuple[np.ndarray, Dict[str, torch.Tensor]]:
    """The input of every layer (a 1x1 conv's averaged over space) for each
    sample of ``loader``; returns ``(sample_idx [N], {name: [N, d]})``."""
    from .offline import run_model
    captured: Dict[str, list] = {n: [] for n, _ in layers}
    handles = []
    for name, module in layers:
        def hook(_m, args, name=name):
            h = args[0].detach()
            captured[name].append(
                (h.mean(dim=(2, 3)) if h.dim() == 4 else h).double().cpu())
        handles.append(module.register_forward_pre_hook(hook))
    idx = []
    try:
        for samples in run_model(model, loader):
            idx.extend(int(s.sample_idx) for s in samples)
    finally:
        for h in handles:
            h.remove()
    return np.asarray(idx), {n: torch.cat(v) for n, v in captured.items()}


def set_layer(module: nn.Module, weight: torch.Tensor,
              bias: torch.Tensor) -> None:
    """Write ``weight`` ``[K, d]`` / ``bias`` ``[K]`` into a Linear or a
    1x1 conv (its dtype and device)."""
    with torch.no_grad():
        w = weight.to(module.weight)
        module.weight.copy_(w.view_as(module.weight))
        module.bias.copy_(bias.to(module.bias))


def _dataset_keys(dataset, balance: str, what: str) -> Tuple[np.ndarray,
                                                             np.ndarray]:
    from ..datasets.training_set_info import training_set_info
    info = training_set_info(dataset)
    y = info['gt_label']
    if balance == 'class':
        return y, y
    groups = info['group_idx']
    if groups is None or (groups < 0).any():
        raise ValueError(
            f'DFR: the {what} set ({type(dataset).__name__}) has samples '
            'without group_idx, so it cannot be group-balanced. Give it '
            "bias annotations (a biased dataset, or type='"
            "BiasAnnotatedDataset' with attribute columns), or balance the "
            'classes instead (--balance class).')
    return y, groups


def check_writable(work_dir: str) -> None:
    """Create ``work_dir`` (if missing) and raise OSError, naming it, unless
    files can be written there: found before the features are extracted,
    not after.

    Args:
        work_dir (str): The folder the outputs go to.
    """
    try:
        os.makedirs(work_dir, exist_ok=True)
    except OSError as err:
        raise OSError(f'DFR: cannot create the work dir {work_dir!r} '
                      f'({err.strerror or err})') from None
    if not os.access(work_dir, os.W_OK | os.X_OK):
        raise OSError(f'DFR: the work dir {work_dir!r} is not writable; '
                      'give another --work-dir')


def run_dfr(config: str, checkpoint: str, work_dir: str,
            cfg_options: Optional[dict] = None,
            c_options: Sequence[float] = C_OPTIONS,
            num_retrains: int = NUM_RETRAINS, balance: str = 'group',
            scaler: str = 'train', layers='auto', seed: int = 0,
            overwrite: bool = False, device: Optional[str] = None) -> dict:
    """Retrain the last layer(s) of ``checkpoint`` on its config's val set;
    write ``<work_dir>/dfr_<name>.pth`` (the whole model, loadable strictly
    by ``tools/test.py``) and ``<work_dir>/dfr_<name>.json`` (C, the
    tuning scores, val metrics before and after).

    Args:
        config (str): The trained model's config.
        checkpoint (str): Its checkpoint.
        work_dir (str): Where the two files go.
        cfg_options (dict, optional): Config overrides.
        c_options, num_retrains, seed: See :func:`dfr_fit`. Every option,
            the groups (classes) of val and the outputs are checked before
            any feature is extracted.
        balance (str): ``'group'`` (DFR) or ``'class'`` (data without bias
            annotations; C chosen by worst-class accuracy).
        scaler (str): Statistics that standardise the final fit: ``'train'``
            (the reference: training-set features, evaluation pipeline) or
            ``'val'``.
        layers (str | list): See :func:`last_layers`.
        overwrite (bool): Replace existing output files.
        device (str, optional): Defaults to CUDA when there is one.
    """
    from ..fileio import OutputClaims, atomic_path, write_json
    from .model import init_occam_model
    from .offline import (build_eval_loader, compute_all_exits,
                          default_device, eval_dataset_cfg, load_config,
                          predictions)
    if balance not in ('group', 'class'):
        raise ValueError(f"DFR: balance={balance!r}; expected 'group' or "
                         "'class'")
    if scaler not in ('train', 'val'):
        raise ValueError(f"DFR: scaler={scaler!r}; expected 'train' or "
                         "'val'")
    # every check that needs no feature first: extraction is the slow part
    check_options(c_options, num_retrains)
    require_extra('fairness', _FEATURE)
    cfg = load_config(config, cfg_options)
    cfg.pop('dfr', None)
    name = osp.splitext(osp.basename(checkpoint))[0]
    claims = OutputClaims(overwrite)
    out_ckpt = claims.claim(osp.join(work_dir, f'dfr_{name}.pth'),
                            'the DFR checkpoint')
    out_json = claims.claim(osp.join(work_dir, f'dfr_{name}.json'),
                            'the DFR results')
    check_writable(work_dir)
    val_loader = build_eval_loader(cfg, eval_dataset_cfg(cfg, 'val'))
    y_all, keys_all = _dataset_keys(val_loader.dataset, balance, 'val')
    meta = val_loader.dataset.metainfo
    names = meta.get('group_names' if balance == 'group' else 'classes')
    check_balance_keys(
        keys_all, meta.get('num_groups') if balance == 'group' else
        (len(names) if names is not None else None), names,
        what=balance,
        where=f'val set ({type(val_loader.dataset).__name__})')
    train_loader = (build_eval_loader(cfg, eval_dataset_cfg(cfg, 'train'))
                    if scaler == 'train' else None)
    model = init_occam_model(cfg, checkpoint,
                             device=device or default_device())
    compute_all_exits(model)
    chosen = last_layers(model, layers)
    idx, feats = extract_features(model, val_loader, chosen)
    y, keys = y_all[idx], keys_all[idx]
    train_feats = None
    if train_loader is not None:
        _, train_feats = extract_features(model, train_loader, chosen)

    def val_metrics():
        i, pred = predictions(model, val_loader)
        return group_accuracy(pred.numpy(), y_all[i.numpy()],
                              keys_all[i.numpy()])

    before = val_metrics()
    fits = {}
    for layer_name, module in chosen:
        num_classes = module.weight.shape[0]
        fit = dfr_fit(feats[layer_name], y, keys, num_classes,
                      scaler_x=None if train_feats is None else
                      train_feats[layer_name], c_options=c_options,
                      num_retrains=num_retrains, seed=seed)
        set_layer(module, fit['weight'], fit['bias'])
        fits[layer_name] = dict(C=fit['C'], tuning=fit['tuning'],
                                num_fit=fit['num_fit'],
                                nonzero_weights=int(
                                    (fit['weight'] != 0).sum()))
    after = val_metrics()
    from ..engine.runner import read_checkpoint
    state = read_checkpoint(checkpoint)
    ckpt_meta = copy.deepcopy(state.get('meta') or {})
    ckpt_meta['dfr'] = dict(source=osp.abspath(checkpoint), balance=balance,
                            layers={k: v['C'] for k, v in fits.items()})
    new_state = dict(meta=ckpt_meta, state_dict={
        k: v.detach().cpu() for k, v in model.state_dict().items()})
    os.makedirs(work_dir, exist_ok=True)
    with atomic_path(out_ckpt, fsync=True) as tmp:
        torch.save(new_state, tmp)

    def named(metrics):
        per = metrics['per_group']
        return dict(metrics, per_group={
            (str(names[k]) if names is not None and k < len(names)
             else str(k)): v for k, v in per.items()})

    result = dict(
        method='DFR (Kirichenko et al., ICLR 2023), on val',
        config=osp.abspath(config), checkpoint=osp.abspath(checkpoint),
        output=osp.abspath(out_ckpt), balance=balance, scaler=scaler,
        c_options=[float(c) for c in c_options], num_retrains=num_retrains,
        seed=seed, num_val=int(len(y)), layers=fits,
        accuracy_unit='percent',
        val_before=named(before), val_after=named(after),
        note='val_after is measured on the val set the layers were fitted '
        'on (not a held-out estimate); test with tools/test.py')
    write_json(out_json, result, indent=2)
    return result
