"""A trained model run over a dataset outside a training run: what JTT's
error set (``occam_plugin.apis.jtt``) and DFR's features
(``occam_plugin.apis.dfr``) share.

:func:`eval_dataset_cfg` is a training set as an evaluation reads it (the
evaluation pipeline: no augmentation); :func:`build_eval_loader` an ordered
dataloader over a dataset config; :func:`run_model` every batch through the
model's ``test_step`` (data preprocessor + ``predict``), in eval mode and
without gradients; :func:`compute_all_exits` makes an OccamNet compute every
exit on every sample (dynamic inference stops samples at their exit).
"""
import copy
from typing import Callable, Iterator, List, Optional, Tuple

import torch
from mmengine.config import Config, ConfigDict

__all__ = [
    'load_config', 'eval_dataset_cfg', 'build_eval_loader',
    'compute_all_exits', 'run_model', 'predictions', 'default_device'
]


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """``config`` with ``--cfg-options`` merged and checked as in
    tools/train.py (``cli.merge_options``: a SystemExit naming a typo'd key
    or a bad value)."""
    from .. import cli
    return cli.merge_options(Config.fromfile(config), cfg_options)


def eval_dataset_cfg(cfg: Config, split: str = 'train') -> ConfigDict:
    """The dataset config of ``<split>_dataloader`` with the pipeline of
    the test (else val) dataloader, so that every sample is read as an
    evaluation reads it (no random crops or flips).

    Args:
        cfg (Config): A merged config.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
    """
    loader = cfg.get(f'{split}_dataloader')
    if not loader or 'dataset' not in loader:
        raise ValueError(f'{cfg.filename or "the config"}: has no '
                         f'{split}_dataloader.dataset to read')
    dataset = copy.deepcopy(loader['dataset'])
    if split != 'train':
        return dataset
    for name in ('test_dataloader', 'val_dataloader'):
        other = cfg.get(name) or {}
        pipeline = (other.get('dataset') or {}).get('pipeline')
        if pipeline is not None and 'pipeline' in dataset:
            dataset['pipeline'] = copy.deepcopy(pipeline)
            break
    return dataset


def build_eval_loader(cfg: Config, dataset_cfg: dict,
                      batch_size: Optional[int] = None):
    """An ordered dataloader (``DefaultSampler(shuffle=False)``, no
    workers) over ``dataset_cfg``, batched as the config's val (else test)
    dataloader."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    template = cfg.get('val_dataloader') or cfg.get('test_dataloader') or {}
    loader = dict(
        batch_size=batch_size or template.get('batch_size', 32),
        num_workers=0, persistent_workers=False,
        dataset=copy.deepcopy(dataset_cfg),
        sampler=dict(type='DefaultSampler', shuffle=False))
    if 'collate_fn' in template:
        loader['collate_fn'] = copy.deepcopy(template['collate_fn'])
    return Runner.build_dataloader(loader)


def compute_all_exits(model: torch.nn.Module) -> None:
    """Every module with an ``inference_mode`` (OccamClassifier, also inside
    an LfFClassifier) computes every exit of every sample from now on."""
    for module in model.modules():
        if isinstance(getattr(module, 'inference_mode', None), str):
            module.inference_mode = 'compute_all'


def run_model(model: torch.nn.Module, loader,
              on_batch: Optional[Callable] = None) -> Iterator[List]:
    """Each batch of ``loader`` through ``model.test_step`` (eval mode, no
    gradients); yields the predicted DataSamples of each batch.

    Args:
        model (nn.Module): A built (and loaded) classifier.
        loader (DataLoader): e.g. :func:`build_eval_loader`.
        on_batch (callable, optional): Called after each batch with its
            DataSamples (e.g. to collect what forward hooks captured).
    """
    model.eval()
    with torch.no_grad():
        for batch in loader:
            samples = model.test_step(batch)
            if on_batch is not None:
                on_batch(samples)
            yield samples


def predictions(model: torch.nn.Module,
                loader) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(sample_idx, pred_label)`` ``[N]`` of every sample of ``loader``
    (for an OccamNet: the exit it takes at inference)."""
    idx, pred = [], []
    for samples in run_model(model, loader):
        for s in samples:
            idx.append(int(s.sample_idx))
            pred.append(int(s.pred_label.reshape(-1)[0]))
    return torch.tensor(idx, dtype=torch.long), torch.tensor(
        pred, dtype=torch.long)


def default_device() -> str:
    """``'cuda'`` when a GPU is there, else ``'cpu'``."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'
