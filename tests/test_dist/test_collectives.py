"""Distributed reductions in two gloo processes: ``all_gather_rows`` (the one
``mmengine.dist`` lacks) and GroupDRO's group statistics (``mmengine.dist.
all_reduce``) give every rank the result of the whole global batch."""
import pytest
import torch

from tests.helpers import end_rank, gloo_rank_results
from occam_plugin.dist import all_gather_rows


def test_all_gather_rows_alone_is_the_identity():
    x = torch.arange(6.).reshape(3, 2)
    assert all_gather_rows(x) is x


def _worker(rank, init_file, out_dir):
    import torch.distributed as dist
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    # rank 0 has 1 row, rank 1 has 3 rows (uneven, as LfF's batches are)
    rows = torch.arange(2 * (1 + 2 * rank), dtype=torch.float64).reshape(
        -1, 2) + 10 * rank
    gathered = all_gather_rows(rows)
    # GroupDRO: rank 0 sees group 0 (loss 1), rank 1 groups 0, 1 (3, 5)
    dro = MODELS.build(dict(type='GroupDRO', num_groups=2, eta=1.0)).train()
    groups, losses = ([0], [1.]) if rank == 0 else ([0, 1], [3., 5.])
    samples = [DataSample(metainfo=dict(group_idx=g)) for g in groups]
    dro(torch.tensor(losses), torch.zeros(len(groups), 2),
        torch.zeros(len(groups), dtype=torch.long), samples)
    end_rank(out_dir, rank, dict(gathered=gathered, q=dro.q.clone()))


@pytest.mark.slow
def test_two_ranks_reduce_the_global_batch(tmp_path):
    r0, r1 = gloo_rank_results(_worker, tmp_path)
    expected = torch.tensor([[0., 1.], [10., 11.], [12., 13.], [14., 15.]],
                            dtype=torch.float64)
    assert torch.equal(r0['gathered'], expected)
    assert torch.equal(r1['gathered'], expected)
    # global group losses: group 0 (1 + 3) / 2 = 2, group 1: 5; q from
    # uniform: q_g ~ exp(L_g), i.e. [e^2, e^5] / (e^2 + e^5), on both ranks
    e2, e5 = torch.exp(torch.tensor(2.)), torch.exp(torch.tensor(5.))
    q = torch.stack([e2, e5]) / (e2 + e5)
    assert torch.allclose(r0['q'][0], q) and torch.equal(r0['q'], r1['q'])
