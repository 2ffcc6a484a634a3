"""tools/publish_model.py: inference weights only, strict, same predictions."""
import os
import os.path as osp
import re

import pytest
import torch

import occam_plugin  # noqa: F401  (checkpoint allow-list for torch.load)
from tests.helpers import (REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           bar_data_options, load_tool, write_bar_folder)

OCCAM_CFG = osp.join(REPO, 'configs', 'occam_resnet18_bar.py')
PLAIN_CFG = osp.join(REPO, 'configs', 'resnet',
                     'resnet18_1xb128_90e_bar.py')


def options(root):
    return ['--cfg-options', *TINY_BAR_OPTIONS, *bar_data_options(root),
            *TINY_RESNET_OPTIONS, 'randomness.deterministic=False',
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('publish')
    root = write_bar_folder(tmp / 'BAR')
    load_tool('train.py').main(
        [OCCAM_CFG, '--work-dir', str(tmp / 'run'), *options(root)])
    return tmp, root, tmp / 'run' / 'epoch_1.pth'


@pytest.mark.slow
def test_published_checkpoint_is_small_strict_and_predicts_the_same(
        trained):
    tmp, root, ckpt = trained
    publish = load_tool('publish_model.py')
    # the config's widths as trained (the tool builds the config's model)
    cfg_file = tmp / 'tiny_occam.py'
    cfg_file.write_text(
        f"_base_ = [{OCCAM_CFG!r}]\n"
        "model = dict(backbone=dict(stem_channels=8, base_channels=8))\n")
    final = publish.main([str(cfg_file), str(ckpt), str(tmp / 'zoo' / 'occ')])
    assert re.fullmatch(r'occ-[0-9a-f]{8}\.pth', osp.basename(final))
    published = torch.load(final, map_location='cpu', weights_only=True)
    original = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert set(published) == {'meta', 'state_dict'}  # no optimizer etc.
    assert published['state_dict'].keys() == original['state_dict'].keys()
    for key in ('memory', 'valid', 'written'):
        assert published['state_dict'][f'head.gate_loss.{key}'].shape[0] == 0
        # one per training image: train/ less the val split, 1 per class
        assert original['state_dict'][f'head.gate_loss.{key}'].shape[0] == 6
    assert osp.getsize(final) < osp.getsize(ckpt)
    # the same metrics from both, through tools/test.py (strict loading)
    test = load_tool('test.py')
    before = test.main([OCCAM_CFG, str(ckpt), '--work-dir',
                        str(tmp / 't1'), *options(root)])
    after = test.main([OCCAM_CFG, final, '--work-dir', str(tmp / 't2'),
                       *options(root)])
    assert before == after


@pytest.mark.slow
def test_publishing_another_models_checkpoint_is_refused(trained):
    tmp, _, ckpt = trained
    publish = load_tool('publish_model.py')
    with pytest.raises(SystemExit) as err:
        publish.main([PLAIN_CFG, str(ckpt), str(tmp / 'zoo' / 'plain')])
    assert 'epoch_1.pth' in str(err.value)
    assert 'does not fit' in str(err.value)


def test_an_output_name_that_is_a_folder_is_refused(tmp_path):
    """torch ended in "invalid file name" (the name became
    ``<folder>/.partial-<pid>``); the name is checked before the model is
    built or the checkpoint read."""
    ckpt = tmp_path / 'epoch_1.pth'
    publish = load_tool('publish_model.py')
    folder = tmp_path / 'zoo_folder'
    folder.mkdir()
    for out_name in (str(folder), str(folder) + '/'):
        with pytest.raises(SystemExit) as err:
            publish.main([OCCAM_CFG, str(ckpt), out_name])
        msg = str(err.value)
        assert f'out_name {out_name!r} is a folder' in msg
        assert osp.join(out_name, 'my_model') in msg  # what to give instead
    assert not list(folder.iterdir())  # nothing written


def _disk_full(kind):
    """A torch.save on a full disk: half the bytes written, then torch's
    error (``inline_container.cc``, no errno) or ``OSError(ENOSPC)``."""
    import errno

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            with open(f, 'wb') as out:
                out.write(b'PK\x03\x04 half a checkpoint')
        if kind == 'torch':
            raise RuntimeError('[enforce fail at inline_container.cc:672] . '
                               'unexpected pos 704 vs 598')
        raise OSError(errno.ENOSPC, 'No space left on device')
    return save


@pytest.mark.parametrize('kind', ['torch', 'oserror'])
def test_a_full_disk_is_one_error_and_leaves_no_temp(tmp_path, monkeypatch,
                                                     kind):
    """torch's inline_container.cc RuntimeError came through as a traceback
    and left <out_name>.partial-<pid> behind."""
    import shutil
    import types
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg_file = tmp_path / 'tiny_occam.py'
    cfg_file.write_text(
        f"_base_ = [{OCCAM_CFG!r}]\n"
        "model = dict(backbone=dict(stem_channels=8, base_channels=8))\n")
    init_default_scope('mmpretrain')
    model = MODELS.build(Config.fromfile(str(cfg_file)).model)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), ckpt)
    monkeypatch.setattr(torch, 'save', _disk_full(kind))
    monkeypatch.setattr(shutil, 'disk_usage',
                        lambda path: types.SimpleNamespace(free=0))
    zoo = tmp_path / 'zoo'
    with pytest.raises(SystemExit) as err:
        load_tool('publish_model.py').main(
            [str(cfg_file), str(ckpt), str(zoo / 'occ')])
    msg = str(err.value)
    assert msg.startswith('error: no space left on device writing '
                          f"'{zoo / 'occ'}-<sha256[:8]>.pth'"), msg
    assert '\n' not in msg
    assert os.listdir(zoo) == []  # no .partial-<pid>
