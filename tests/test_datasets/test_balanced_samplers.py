"""GroupBalancedSampler and ClassBalancedSampler: the probabilities of each
sample (checked by hand), the counts they draw, determinism given seed and
epoch, the split over ranks, and a tools/train.py run with group-balanced
sampling (and GroupDRO) on a tiny Waterbirds-format folder."""
import collections

import pytest

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATA_SAMPLERS
from occam_plugin.datasets import balanced_sampler

from tests.helpers import latest_log, load_tool
from tests.helpers import (
    tiny_waterbirds_options,
    waterbirds_config,
    write_waterbirds,
)


class Toy:
    """A dataset of annotations only: ``group_idx`` and ``gt_label``."""

    metainfo = dict(num_groups=3)

    def __init__(self, groups, labels):
        self.groups, self.labels = groups, labels

    def __len__(self):
        return len(self.groups)

    def get_data_info(self, i):
        info = dict(gt_label=self.labels[i])
        if self.groups[i] is not None:
            info['group_idx'] = self.groups[i]
        return info


GROUPS = [0, 0, 0, 1, 2, 2]
LABELS = [0, 0, 0, 0, 1, 1]


def sampler(kind, dataset=None, **kw):
    return DATA_SAMPLERS.build(dict(type=kind, dataset=dataset or Toy(
        GROUPS, LABELS), **kw))


def test_probabilities_by_hand():
    # groups of 3, 1, 2 samples: each group 1/3, shared within it
    g = sampler('GroupBalancedSampler', seed=0)
    assert g.key_counts == {0: 3, 1: 1, 2: 2}
    assert g.probabilities.tolist() == pytest.approx(
        [1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 6, 1 / 6])
    # classes of 4 and 2 samples: each class 1/2
    c = sampler('ClassBalancedSampler', seed=0)
    assert c.key_counts == {0: 4, 1: 2}
    assert c.probabilities.tolist() == pytest.approx(
        [1 / 8] * 4 + [1 / 4] * 2)
    assert len(g) == len(c) == 6  # an epoch as long as the dataset's


def test_counts_are_balanced():
    g = sampler('GroupBalancedSampler', seed=1, num_samples=30000)
    drawn = list(g)
    assert len(drawn) == 30000 and set(drawn) == set(range(6))
    per_group = collections.Counter(GROUPS[i] for i in drawn)
    # each group a third (binomial sd 0.0027: 0.02 is 7 sd)
    for k in range(3):
        assert abs(per_group[k] / 30000 - 1 / 3) < 0.02
    per_sample = collections.Counter(drawn)
    assert abs(per_sample[3] / 30000 - 1 / 3) < 0.02  # alone in its group
    assert abs(per_sample[0] / 30000 - 1 / 9) < 0.02
    c = sampler('ClassBalancedSampler', seed=1, num_samples=30000)
    per_class = collections.Counter(LABELS[i] for i in c)
    assert abs(per_class[1] / 30000 - 1 / 2) < 0.02


def test_deterministic_given_seed_and_epoch():
    a = sampler('GroupBalancedSampler', seed=3, num_samples=50)
    b = sampler('GroupBalancedSampler', seed=3, num_samples=50)
    epoch0 = list(a)
    assert epoch0 == list(b) == list(a)  # same seed, same epoch
    a.set_epoch(1)
    epoch1 = list(a)
    assert epoch1 != epoch0
    b.set_epoch(1)
    assert list(b) == epoch1
    a.set_epoch(0)
    assert list(a) == epoch0
    assert list(sampler('GroupBalancedSampler', seed=4,
                        num_samples=50)) != epoch0


def test_ranks_share_one_draw(monkeypatch):
    """3 ranks, 10 samples per epoch: 4 per rank (rounded up), rank r the
    r-th of every 3 of the one draw of 12 all ranks make."""
    whole = list(sampler('GroupBalancedSampler', seed=5, num_samples=12))
    parts = []
    for rank in range(3):
        monkeypatch.setattr(balanced_sampler, 'get_dist_info',
                            lambda r=rank: (r, 3))
        s = sampler('GroupBalancedSampler', seed=5, num_samples=10)
        assert (len(s), s.total_size) == (4, 12)
        parts.append(list(s))
        assert len(parts[-1]) == 4
    assert [parts[i % 3][i // 3] for i in range(12)] == whole


def test_errors():
    with pytest.raises(ValueError, match=r'GroupBalancedSampler: 2 of 6 '
                       r'samples .* have no group_idx \(e\.g\. sample 1\)'
                       r'.*ClassBalancedSampler'):
        sampler('GroupBalancedSampler',
                Toy([0, None, 1, None, 1, 0], LABELS), seed=0)
    with pytest.raises(ValueError, match='num_samples must be an integer'):
        sampler('ClassBalancedSampler', seed=0, num_samples=0)
    with pytest.raises(ValueError, match='shuffle=False, but balanced'):
        sampler('ClassBalancedSampler', seed=0, shuffle=False)


@pytest.mark.slow
def test_group_balanced_training_run(tmp_path):
    """ResNet-18 (width 8) with group-balanced sampling and GroupDRO on a
    tiny Waterbirds-format folder, by --cfg-options alone."""
    root = write_waterbirds(tmp_path / 'waterbird_complete95_forest2water2')
    work = tmp_path / 'run'
    load_tool('train.py').main(
        [waterbirds_config(tmp_path, 'resnet18'), '--work-dir', str(work),
         '--cfg-options', *tiny_waterbirds_options(root),
         'train_dataloader.sampler.type=GroupBalancedSampler',
         'model.head.method.type=GroupDRO'])
    log = latest_log(work)
    assert "type='GroupBalancedSampler'" in log  # the config that ran
    assert 'TrainingStateHook: prepared' in log  # GroupDRO got the groups
    assert 'bias/worst_group_acc' in log
