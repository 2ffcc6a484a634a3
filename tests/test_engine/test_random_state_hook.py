"""RandomStateHook: the Python, numpy and torch generator states that a
checkpoint carries are the ones a resumed run continues from."""
import random

import numpy as np
import pytest
import torch

from occam_plugin.engine.hooks import RandomStateHook


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def _round_trip(move=lambda t: t):
    hook = RandomStateHook()
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    checkpoint = {}
    hook.before_save_checkpoint(None, checkpoint)
    expected = _draws()
    # mmengine re-seeds at start-up before a resume
    random.seed(2)
    np.random.seed(2)
    torch.manual_seed(2)
    states = checkpoint['meta'][RandomStateHook.META_KEY]
    states['torch'] = move(states['torch'])
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train(None)
    return _draws(), expected


def test_restored_states_continue_the_saved_draws():
    resumed, uninterrupted = _round_trip()
    assert resumed == uninterrupted
    # restore=False: the saved states stay in the checkpoint, unused
    checkpoint = {}
    torch.manual_seed(4)
    RandomStateHook().before_save_checkpoint(None, checkpoint)
    hook = RandomStateHook(restore=False)
    hook.after_load_checkpoint(None, checkpoint)
    torch.manual_seed(3)
    first = torch.rand(1)
    torch.manual_seed(3)
    hook.before_train(None)
    assert torch.equal(torch.rand(1), first)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_states_mapped_to_the_gpu_by_a_resume_are_restored():
    # mmengine's resume maps the checkpoint to the GPU on a GPU machine;
    # torch.set_rng_state refused that tensor (seen on an H200)
    resumed, uninterrupted = _round_trip(lambda t: t.cuda())
    assert resumed == uninterrupted
