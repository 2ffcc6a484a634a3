"""JTT's second stage: the training set with its error set upsampled."""
import copy
from typing import List, Union

from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

from .error_set import read_error_set

__all__ = ['UpsampledDataset']


@DATASETS.register_module()
class UpsampledDataset(BaseDataset):
    """A training set with each sample of a JTT error set repeated
    ``lambda_up`` more times (Liu et al., ICML 2021, "Just Train Twice").

    As the reference (anniesch/jtt, ``run_expt.py``: ``ConcatDataset([
    train_data, Subset(train_data, aug_indices * up_weight)])``): the
    samples are the whole training set, in order, then the error set's
    indices ``lambda_up`` times over, so an error-set sample appears
    ``1 + lambda_up`` times per epoch and every other once. (The paper's
    objective, ``lambda_up * sum_E l + sum_rest l``, counts it
    ``lambda_up`` times; the reference code, which the published numbers
    come from, ``1 + lambda_up``.)

    Each copy is a sample of its own: ``sample_idx`` is its position in this
    dataset (so per-sample training state, e.g. the Occam gate memory or
    LfF's EMAs, has a row per copy) and ``source_idx`` the index in the
    wrapped dataset. Every other field (``gt_label``, ``group_idx``, the
    bias fields) and ``metainfo`` are the wrapped dataset's, so metrics,
    samplers and methods see it as the training set.

    ``train_dataloader.dataset = dict(type='UpsampledDataset',
    dataset=<the training set>, error_set='<work_dir>/error_set.json',
    lambda_up=100)``; ``tools/jtt.py`` writes that config.

    Args:
        dataset (dict | BaseDataset): The training set (a config or built).
        error_set (str): The error-set JSON (``tools/jtt.py``); it must have
            been made on this training set (same size, same image at each
            recorded index).
        lambda_up (int): Extra copies of each error-set sample (>= 1; JTT's
            Waterbirds 100, CelebA 50).
        lazy_init (bool): As ``BaseDataset``. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 error_set: str,
                 lambda_up: int,
                 lazy_init: bool = False) -> None:
        if isinstance(lambda_up, bool) or not isinstance(
                lambda_up, int) or lambda_up < 1:
            raise ValueError(
                f'UpsampledDataset: lambda_up={lambda_up!r}; expected an '
                'integer >= 1 (the extra copies of each error-set sample).')
        self.dataset = (DATASETS.build(copy.deepcopy(dataset))
                        if isinstance(dataset, dict) else dataset)
        self.error_set_file = error_set
        self.lambda_up = lambda_up
        self.error_set = read_error_set(error_set, self.dataset)
        super().__init__(ann_file='', metainfo=self.dataset.metainfo,
                         data_root='', pipeline=[], test_mode=False,
                         lazy_init=lazy_init)
        # the wrapped dataset's transforms read each copy's image
        self.pipeline = self.dataset.pipeline

    def source_indices(self) -> List[int]:
        """The wrapped dataset's index of every sample of this one."""
        return (list(range(len(self.dataset))) +
                list(self.error_set['indices']) * self.lambda_up)

    def load_data_list(self) -> List[dict]:
        out = []
        for j in self.source_indices():
            info = dict(self.dataset.get_data_info(j))
            info.pop('sample_idx', None)  # set per copy by get_data_info
            info['source_idx'] = j
            out.append(info)
        return out
