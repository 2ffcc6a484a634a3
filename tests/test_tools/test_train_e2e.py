"""End to end through tools/train.py and tools/test.py on a tiny BAR folder.

Real mmengine Runner, real JPEG files, real checkpoints; the models are made
tiny with --cfg-options only (width 8, 32 px, batch 4).
"""
import os
import os.path as osp
import textwrap

import pytest
import torch

import occam_plugin  # noqa: F401  (checkpoint allow-list for torch.load)
from tests.helpers import (REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           bar_data_options, load_tool, read_logs, run_tool,
                           write_bar_folder)
from occam_plugin.evaluation import load_predictions

OCCAM_CFG = osp.join(REPO, 'configs', 'occam_resnet18_bar.py')
PLAIN_CFG = osp.join(REPO, 'configs', 'resnet',
                     'resnet18_1xb128_90e_bar.py')
TIMM_OPTIONS = (
    'model.backbone._delete_=True',
    'model.backbone.type=TIMMBackbone',
    'model.backbone.model_name=resnet18',
    'model.backbone.features_only=True',
    'model.backbone.pretrained=False',
    'model.backbone.out_indices=(1,2,3,4)',
)
GATE_STATE = ('head.gate_loss.memory', 'head.gate_loss.valid',
              'head.gate_loss.written')


def load_ckpt(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def train(work_dir, data_root, *extra, config=OCCAM_CFG, check=True,
          **kwargs):
    return run_tool('train.py', config, '--work-dir', str(work_dir),
                    '--cfg-options', *TINY_BAR_OPTIONS,
                    *bar_data_options(data_root), *extra, check=check,
                    **kwargs)


@pytest.fixture(scope='module')
def occam_run(tmp_path_factory, bar_root):
    """OccamResNet-18 (width 8) trained 2 epochs through tools/train.py."""
    work_dir = tmp_path_factory.mktemp('occam_2ep')
    train(work_dir, bar_root, *TINY_RESNET_OPTIONS)
    return work_dir, read_logs(work_dir)


@pytest.mark.slow
def test_occam_resnet_train_and_test(occam_run, bar_root, tmp_path):
    work_dir, log = occam_run
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert osp.isfile(osp.join(work_dir, name)), name
    # every exit's losses are logged apart
    for key in ('loss_cam_supp_e0', 'loss_ce_e3', 'loss_gate_e1'):
        assert key in log
    ckpt = load_ckpt(osp.join(work_dir, 'epoch_2.pth'))
    assert ckpt['meta']['epoch'] == 2
    assert ckpt['state_dict']['backbone.conv1.weight'].shape[0] == 8
    # gate memory sized to the 6 training images (train/ less the 6 val
    # images), every sample written
    assert ckpt['state_dict']['head.gate_loss.memory'].shape[0] == 6
    assert bool(ckpt['state_dict']['head.gate_loss.written'].any(1).all())

    out = tmp_path / 'preds.pkl'
    proc = run_tool('test.py', OCCAM_CFG, osp.join(work_dir, 'epoch_2.pth'),
                    '--work-dir', str(tmp_path / 'test'), '--out', str(out),
                    '--cfg-options', *TINY_BAR_OPTIONS,
                    *TINY_RESNET_OPTIONS, *bar_data_options(bar_root))
    assert 'accuracy/top1' in proc.stdout
    # the allow-list loader reads a real tools/test.py dump
    preds = load_predictions(str(out))
    assert len(preds) == 12  # the 12 test images
    for p in preds:
        assert 0 <= int(p['pred_label']) < 6
        assert 1 <= int(p['exit_idx']) <= 3  # exit 0 never used at inference
        assert tuple(p['exit_scores'].shape) == (4, 6)


@pytest.mark.slow
def test_timm_backbone_via_cfg_options(tmp_path, bar_root):
    work_dir = tmp_path / 'timm'
    train(work_dir, bar_root, *TIMM_OPTIONS)
    assert 'loss_gate_e3' in read_logs(work_dir)
    ckpt = load_ckpt(osp.join(work_dir, 'epoch_2.pth'))
    assert any(
        k.startswith('backbone.timm_model.') for k in ckpt['state_dict'])
    proc = run_tool('test.py', OCCAM_CFG, osp.join(work_dir, 'epoch_2.pth'),
                    '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                    *TINY_BAR_OPTIONS, *TIMM_OPTIONS,
                    *bar_data_options(bar_root))
    assert 'accuracy/top1' in proc.stdout


@pytest.mark.parametrize('config', [
    'resnet/resnet18_1xb128_90e_bar.py', 'occam_resnet18_bar.py',
    'occamnets/occamnets_efficientnet-b0_1xb128_90e_bar.py'])
def test_configs_build(config):
    """Every shipped BAR config builds its model and its BAR pipelines."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    assert cfg.custom_imports.imports == ['occam_plugin']
    assert cfg.train_dataloader.dataset.type == 'BAR'
    assert cfg.train_dataloader.dataset.data_root == 'data/BAR'
    assert cfg.train_dataloader.dataset.pipeline[-1].type == 'PackBiasInputs'
    assert cfg.test_dataloader.dataset.split == 'test'
    assert cfg.model.head.num_classes == 6
    model = MODELS.build(cfg.model)
    model.eval()
    out = model(torch.zeros(2, 3, 64, 64), mode='tensor')
    outs = out if isinstance(out, tuple) else (out, )
    assert all(o.shape == (2, 6) for o in outs)
    if config.startswith('occam'):
        assert len(outs) == 4
    # the training state and the guards come with the runner, not the config
    assert cfg.runner_type == 'SafeRunner'
    assert 'TrainingStateHook' not in {
        h.type for h in cfg.get('custom_hooks', [])}


@pytest.mark.slow
def test_resume_gives_identical_weights_and_gate_memory(occam_run, bar_root,
                                                        tmp_path):
    full_dir, _ = occam_run
    work_dir = tmp_path / 'resumed'
    train(work_dir, bar_root, *TINY_RESNET_OPTIONS, 'train_cfg.max_epochs=1')
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))
    train(work_dir, bar_root, *TINY_RESNET_OPTIONS, '--resume')
    assert 'resumed epoch: 1' in read_logs(work_dir)

    full = load_ckpt(osp.join(full_dir, 'epoch_2.pth'))['state_dict']
    resumed = load_ckpt(osp.join(work_dir, 'epoch_2.pth'))['state_dict']
    assert full.keys() == resumed.keys()
    for key in GATE_STATE:
        assert key in full
    differing = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert differing == []


RANK_DUMP_HOOK = '''
import os.path as osp
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model


@HOOKS.register_module()
class DumpGateMemoryHook(Hook):
    """Test only: each rank saves its head's gate state at the end."""
    priority = 'LOWEST'

    def after_train(self, runner):
        model = get_ori_model(runner.model)
        state = {k: v.clone() for k, v in model.state_dict().items()
                 if k.startswith('head.gate_loss.')}
        torch.save(state, osp.join(runner.work_dir,
                                   f'gate_state_rank{get_rank()}.pth'))
'''


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path, bar_root):
    (tmp_path / 'dump_gate_memory_hook.py').write_text(RANK_DUMP_HOOK)
    config = tmp_path / 'occam_dist.py'
    config.write_text(textwrap.dedent(f'''
        _base_ = [{OCCAM_CFG!r}]
        custom_imports = dict(
            imports=['occam_plugin', 'dump_gate_memory_hook'],
            allow_failed_imports=False)
        custom_hooks = [dict(type='DumpGateMemoryHook')]
    '''))
    work_dir = tmp_path / 'dist'
    env = dict(PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    out = train(work_dir, bar_root, *TINY_RESNET_OPTIONS,
                'train_cfg.max_epochs=1',
                # the CPU configs' preprocessor: contiguous batches under DDP
                'data_preprocessor.type=ChannelsLastDataPreprocessor',
                '--launcher', 'pytorch',
                config=str(config), nproc=2, env=env).stdout
    # channels-last batches would give DDP's buckets other strides than
    # the gradients (a warning on every rank)
    assert 'Grad strides do not match' not in out
    # really two processes in one group (not two independent runs)
    log = read_logs(work_dir)
    assert "type='ChannelsLastDataPreprocessor'" in log
    assert 'Distributed training is not used' not in log
    assert 'Distributed training: True' in log
    ranks = [torch.load(work_dir / f'gate_state_rank{r}.pth',
                        weights_only=True) for r in (0, 1)]
    memory = ranks[0]['head.gate_loss.memory']
    assert memory.shape[0] == 6  # the train split of the 12 train/ images
    # every training sample was seen by one of the ranks and its gate target
    # is known to both
    # (sync_state at the epoch end marks them valid on every rank)
    assert bool(ranks[0]['head.gate_loss.valid'].all())
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    ckpt = load_ckpt(work_dir / 'epoch_1.pth')['state_dict']
    assert torch.equal(ckpt['head.gate_loss.memory'], memory)


# --- bad inputs: a clear error, and earlier checkpoints left intact -------
# Run in the test process (tools/train.py main(argv)): the failures happen
# while the Runner builds or in the first iterations, so this is the same code
# path as the command line without paying the imports again.

def _bad_root(tmp_path, case):
    # train/: climbing_0-1, diving_2-3, fishing_4-5, ...: the first of each
    # class is its val image, the second its train image
    root = write_bar_folder(tmp_path / 'BAR', per_class=2)
    train_dir = osp.join(root, 'train')
    if case == 'missing_root':
        return str(tmp_path / 'no' / 'BAR')
    if case == 'empty_class':
        for name in ('diving_2.jpg', 'diving_3.jpg'):
            os.remove(osp.join(train_dir, name))
    elif case == 'unknown_class':
        os.rename(osp.join(train_dir, 'racing_9.jpg'),
                  osp.join(train_dir, 'surfing_9.jpg'))
    elif case == 'corrupt_image':
        with open(osp.join(train_dir, 'fishing_5.jpg'), 'wb') as f:
            f.write(b'\xff\xd8\xff\xe0 truncated garbage')
    return root


BAD_CASES = {
    'missing_root': ((), FileNotFoundError, [
        'data root', 'does not exist', 'github.com/alinlab/BAR',
        'data/BAR/{train,test}/<class>_<id>.jpg']),
    'empty_class': ((), ValueError, ["no images of class(es) ['diving']"]),
    'unknown_class': ((), ValueError, [
        'surfing_9.jpg', 'unknown class prefix', 'pole vaulting']),
    'corrupt_image': ((), ValueError, ['Corrupt image', 'fishing_5.jpg']),
    'one_map_backbone': (('model.backbone.out_indices=(3,)', ), Exception,
                         ['out_indices']),
    'num_classes_mismatch': (('model.head.num_classes=5', ), ValueError,
                             ['model.head.num_classes', '6 classes']),
}


@pytest.mark.parametrize('case', sorted(BAD_CASES))
def test_bad_input_fails_clearly_before_any_checkpoint(case, tmp_path):
    work_dir = tmp_path / 'run'
    extra, error, messages = BAD_CASES[case]
    root = _bad_root(tmp_path, case)
    train_tool = load_tool('train.py')
    argv = [OCCAM_CFG, '--work-dir', str(work_dir), '--cfg-options',
            *TINY_BAR_OPTIONS, *bar_data_options(root), *TINY_RESNET_OPTIONS,
            # keep torch's global deterministic switch off in this process
            'randomness.deterministic=False', *extra]
    with pytest.raises(error) as err:
        train_tool.main(argv)
    for message in messages:
        assert message in str(err.value)
    if case == 'missing_root':
        assert str(tmp_path / 'no' / 'BAR') in str(err.value)
    # (a used work dir is refused before any of this: test_checkpoint_safety)
    written = [f for f in os.listdir(work_dir) if f.endswith('.pth')] \
        if osp.isdir(work_dir) else []
    assert written == []
