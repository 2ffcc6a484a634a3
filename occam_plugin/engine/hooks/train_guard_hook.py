import random
from contextlib import contextmanager
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model
from ...evaluation.metrics.bias_metric import HOW_TO_ANNOTATE
from ...models.utils.annotation_needs import AnnotationNeeds
from ...models.utils.finite import check_finite_losses, non_finite_losses

__all__ = [
    'model_num_classes', 'group_needs', 'missing_group_annotations',
    'dataset_labels', 'describe_dataset', 'single_class_problem',
    'TrainGuardHook'
]


def model_num_classes(model):
    """The class count a classifier predicts (``head.num_classes``), or None
    when its head does not say (e.g. a custom head)."""
    model = get_ori_model(model)
    head = getattr(model, 'head', None)
    num = getattr(head, 'num_classes', None)
    return num if isinstance(num, int) else None


def group_needs(model) -> List[Tuple[str, Tuple[str, ...], str]]:
    """The modules of ``model`` that read bias annotations from every
    training sample (they declare it: ``AnnotationNeeds``): ``(who, keys,
    hint)``, any one of ``keys`` suffices (the form
    :func:`missing_group_annotations` takes)."""
    model = get_ori_model(model)
    needs = []
    for name, m in model.named_modules():
        if not isinstance(m, AnnotationNeeds):
            continue
        keys = tuple(m.needed_sample_keys(model))
        if keys:
            kind = type(m).__name__
            needs.append((f'{kind} (model.{name})', keys,
                          f'Giving num_groups cannot help. Or train '
                          f'without {kind}.'))
    return needs


@contextmanager
def _rng_kept():
    """Run the block without moving the random streams (a pipeline's
    random augmentations draw from them)."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def missing_group_annotations(needs, dataset, split: str = 'training',
                              num_checked: int = 8) -> Optional[str]:
    """Why ``dataset`` cannot give what ``needs`` read, or None when it
    can.

    Args:
        needs (list): ``(who, keys, hint)`` per reader (:func:`group_needs`):
            who reads, the sample keys of which one suffices, and what to
            add to the message.
        dataset: The dataset; the first ``num_checked`` samples' data info
            must hold one of each reader's keys, and the first sample out of
            the pipeline (drawn with the random streams kept) must carry
            it.
        split (str): The dataset's role, for the message. Defaults to
            ``'training'``.
        num_checked (int): Samples whose data info is read. Defaults to 8.
    """
    if not needs or len(dataset) == 0:
        return None
    n = min(num_checked, len(dataset))
    infos = [dataset.get_data_info(i) for i in range(n)]
    packed = None
    for who, keys, hint in needs:
        keys_text = ' or '.join(f'`{k}`' for k in keys)
        lacking = [i for i, info in enumerate(infos)
                   if all(info.get(k) is None for k in keys)]
        if lacking:
            return (
                f'{who} reads {keys_text} from every {split} sample, but the '
                f'{split} set ({type(dataset).__name__}) has none: sample '
                f'{lacking[0]} (of the first {n} checked) has data info keys '
                f'{sorted(infos[lacking[0]])}. {HOW_TO_ANNOTATE} {hint}'
            ).rstrip()
        if packed is None:
            with _rng_kept():
                packed = dataset[0]
        sample = packed.get('data_samples') if isinstance(packed, dict) \
            else None
        if sample is not None and all(k not in sample for k in keys):
            return (
                f'{who} reads {keys_text} from every {split} sample; the '
                f'{split} set ({type(dataset).__name__}) has it in its data '
                'info, but the samples out of its pipeline do not carry it '
                "(the pipeline's last step does not pack it): end the "
                "pipeline with dict(type='PackBiasInputs').")
    return None


def dataset_labels(dataset) -> Optional[np.ndarray]:
    """Every sample's ``gt_label`` from the data info of ``dataset`` (no
    image is loaded), or None when the dataset cannot say (no
    ``get_data_info``, or a sample without a scalar ``gt_label``).

    Args:
        dataset: The dataset (any with ``__len__`` and ``get_data_info``).
    """
    get = getattr(dataset, 'get_data_info', None)
    if get is None:
        return None
    labels = []
    for i in range(len(dataset)):
        label = np.asarray(get(i).get('gt_label', []))
        if label.size != 1:
            return None  # unlabelled or multi-label: no class count
        labels.append(int(label.reshape(())))
    return np.asarray(labels, dtype=np.int64)


def describe_dataset(dataset) -> str:
    """``BiasedMNIST (data_root='data/x', split='train')``: the type and
    where its data lives, for messages.

    Args:
        dataset: The dataset.
    """
    where = [f'{k}={getattr(dataset, k)!r}'
             for k in ('data_root', 'ann_file', 'split')
             if getattr(dataset, k, None)]
    return type(dataset).__name__ + (f' ({", ".join(where)})' if where
                                     else '')


def single_class_problem(dataset, split: str = 'training') -> Optional[str]:
    """Why ``dataset`` cannot train a classifier (all its samples are of one
    class, so any model reaches 100 % by predicting it), or None.

    Args:
        dataset: The dataset.
        split (str): Its role, for the message. Defaults to 'training'.
    """
    if len(dataset) == 0:
        return None
    labels = dataset_labels(dataset)
    if labels is None:
        return None
    present = np.unique(labels)
    if len(present) > 1:
        return None
    classes = getattr(dataset, 'metainfo', {}).get('classes') or ()
    c = int(present[0])
    name = f' ({classes[c]!r})' if 0 <= c < len(classes) else ''
    declared = f' of the {len(classes)} it declares' if classes else ''
    return (
        f'The {split} set {describe_dataset(dataset)} has samples of 1 '
        f'class{declared}: all {len(labels)} are class {c}{name}. A model '
        'trained on it predicts that class for everything and every metric '
        'reads 100 %. Check its size / subset options (e.g. '
        'generate.num_trainval) and its annotations.')


@HOOKS.register_module()
class TrainGuardHook(Hook):
    """Stop a run whose model cannot learn what the data asks, for any model.

    Added to every run by ``SafeRunner`` (``default_hooks.guard``), so plain
    baselines get the same guards as OccamNets:

    - ``before_train``: ``model.head.num_classes`` must equal the number of
      classes of the training set (``metainfo['classes']``);
    - ``before_train``: a method that reads groups from every sample
      (GroupDRO, GroupUpweighting, PGI with group labels:
      :func:`group_needs`) needs a training set whose samples carry them,
      in the data info and out of the pipeline
      (:func:`missing_group_annotations`); otherwise the run stops saying
      which annotation is missing and how to provide it;
    - ``before_train``: the training set must hold samples of at least two
      classes (:func:`single_class_problem`): on one class every metric
      reads 100 % and nothing was learned;
    - ``before_train``: a ``ChannelsLastDataPreprocessor`` is told the model
      and whether it trains under DDP, and keeps the batch contiguous where
      channels-last is unsafe (``check_model``);
    - ``after_train_iter``: every loss of the step must be finite; a NaN or
      inf stops the run with the loss, epoch, iteration and learning rate,
      before any checkpoint of the diverged weights is written (checkpoints
      are saved at epoch ends, and this hook runs before CheckpointHook's
      iteration saves).

    Args:
        check_num_classes (bool): Compare the head's class count with the
            dataset's. Defaults to True.
        check_finite (bool): Stop on non-finite losses. Defaults to True.
        check_groups (bool): Check that the training samples carry the
            groups the model's methods read. Defaults to True.
        check_classes (bool): Stop when the training set holds one class
            only. Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_num_classes: bool = True,
                 check_finite: bool = True, check_groups: bool = True,
                 check_classes: bool = True):
        self.check_num_classes = check_num_classes
        self.check_classes = check_classes
        self.check_finite = check_finite
        self.check_groups = check_groups

    def before_train(self, runner) -> None:
        if self.check_groups:
            why = missing_group_annotations(
                group_needs(runner.model), runner.train_dataloader.dataset)
            if why:
                raise ValueError(why)
        if self.check_classes:
            why = single_class_problem(runner.train_dataloader.dataset)
            if why:
                raise ValueError(why)
        model = get_ori_model(runner.model)
        pre = getattr(model, 'data_preprocessor', None)
        if hasattr(pre, 'check_model'):  # ChannelsLastDataPreprocessor
            pre.check_model(model, distributed=is_model_wrapper(
                runner.model) and torch.distributed.is_initialized())
        if not self.check_num_classes:
            return
        num = model_num_classes(runner.model)
        dataset = runner.train_dataloader.dataset
        classes = getattr(dataset, 'metainfo', {}).get('classes', None)
        if num is None or classes is None:
            print_log(
                'TrainGuardHook: the model head has no num_classes or the '
                "training set no metainfo['classes']; class count not "
                'checked.', logger='current')
            return
        if num != len(classes):
            raise ValueError(
                f'model.head.num_classes is {num} but the training set '
                f'has {len(classes)} classes ({list(classes)}); set '
                f'`model.head.num_classes={len(classes)}`.')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not self.check_finite or not outputs:
            return
        bad = non_finite_losses(outputs)
        if not bad:
            return
        model = get_ori_model(runner.model)
        # the lr is read only when the run stops, not every step
        check_finite_losses(
            bad,
            f'{type(model).__name__}, epoch {runner.epoch + 1}, iter '
            f'{runner.iter + 1}',
            'the run stops here (checkpoints written so far are intact). '
            f'Check the learning rate (now {runner.optim_wrapper.get_lr()}),'
            ' the input normalisation and the labels.')
