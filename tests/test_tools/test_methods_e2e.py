"""Every bias-mitigation method trains one short epoch through tools/train.py,
on a plain ResNet-18 and on an OccamResNet-18 (tiny Biased MNIST: 16 train
images of 32 px, width 8). A method is switched on by config alone: one
line in a config that inherits the model's (or the same key with
--cfg-options); LfF (a twin model) by its config in configs/lff/."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tests.helpers import LOADERS, REPO, bmnist_data_options, latest_log


def _load_train_tool():
    spec = importlib.util.spec_from_file_location(
        'occam_tools_train', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN = _load_train_tool()


def train(config, work_dir, *args):
    """tools/train.py in this process (saves the interpreter start-up of a
    subprocess per run); returns the run's log text."""
    TRAIN.main([config, '--work-dir', str(work_dir), *args])
    return latest_log(work_dir)


METHODS = ('upwt', 'gdro', 'sd', 'pgi', 'lff')
#: the method module each method is (model.head.method.type)
METHOD_TYPES = dict(upwt='GroupUpweighting', gdro='GroupDRO',
                    sd='SpectralDecoupling', pgi='PGILoss')
MODELS_ = ('resnet18', 'occam_resnet18')
#: (model, data) -> the ERM config and LfF's config, relative to configs/
CONFIGS = {
    ('resnet18', 'biased_mnist_small'): (
        'resnet/resnet18-w16_1xb64_10e_biased-mnist-small.py',
        'lff/lff_resnet18-w16_1xb64_10e_biased-mnist-small.py'),
    ('occam_resnet18', 'biased_mnist_small'): (
        'occamnets/occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py',
        'lff/lff_occamnets-resnet18-w16_1xb64_10e_biased-mnist-small.py'),
    ('mlp', 'colored_mnist'): (
        'mlp/mlp_1xb256_100e_colored-mnist.py',
        'lff/lff_mlp_1xb256_100e_colored-mnist.py'),
    ('resnet18', 'colored_mnist'): (
        'resnet/resnet18_1xb256_100e_colored-mnist.py',
        'lff/lff_resnet18_1xb256_100e_colored-mnist.py'),
    ('occam_resnet18', 'colored_mnist'): (
        'occamnets/occamnets_resnet18_1xb256_100e_colored-mnist.py',
        'lff/lff_occamnets-resnet18_1xb256_100e_colored-mnist.py'),
}


def method_config(folder, model, method, data='biased_mnist_small'):
    """The config of ``model`` on ``data`` with ``method``: LfF's own file,
    else what a user writes: the model config plus one line."""
    erm, lff = CONFIGS[model, data]
    if method == 'lff':
        return osp.join(REPO, 'configs', lff)
    path = osp.join(str(folder), f'{model}_{data}_{method}.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = [{osp.join(REPO, 'configs', erm)!r}]"
                f"\nmodel = dict(head=dict(method=dict(type="
                f"'{METHOD_TYPES[method]}')))\n")
    return path


def tiny_options(data_root, model, method, max_epochs=1):
    # 18 trainval renderings (of every class, in class turns): 15 of them
    # are train images (train_ixs), 3 val; 10 test images
    opts = list(bmnist_data_options(data_root, num_trainval=18, num_test=10))
    for loader in LOADERS:
        opts.append(f'{loader}.batch_size={8 if loader[0] == "t" else 10}')
    opts += [f'train_cfg.max_epochs={max_epochs}',
             'default_hooks.logger.interval=1', 'randomness.seed=0']
    # width 8 for every ResNet in the model (LfF has two)
    if method == 'lff':
        parts = ['model.biased_model']
        if model == 'occam_resnet18':
            parts.append('model.debiased_model')
    else:
        parts = ['model']
    for p in parts:
        opts += [f'{p}.backbone.stem_channels=8',
                 f'{p}.backbone.base_channels=8']
    # (the heads read their in_channels from the narrowed backbones)
    return opts


@pytest.fixture(scope='module')
def bmnist_root(tmp_path_factory):
    """One tiny Biased MNIST folder shared by the runs (generated once)."""
    return str(tmp_path_factory.mktemp('bmnist'))


@pytest.mark.slow
@pytest.mark.parametrize('model', MODELS_)
@pytest.mark.parametrize('method', METHODS)
def test_method_trains_one_epoch(bmnist_root, tmp_path, model, method):
    log = train(method_config(tmp_path, model, method), tmp_path / 'run',
                '--cfg-options', *tiny_options(bmnist_root, model, method))
    assert 'Epoch(train)' in log and 'Epoch(val)' in log
    assert 'bias/unbiased_acc' in log  # the bias-aware metric ran
    assert osp.exists(osp.join(tmp_path, 'run', 'epoch_1.pth'))
    if method == 'lff':
        assert 'biased.loss_gce' in log and 'lff_weight_mean' in log
    if method in ('upwt', 'gdro', 'lff'):
        assert 'TrainingStateHook: prepared' in log


@pytest.mark.slow
def test_method_by_cfg_options_alone(bmnist_root, tmp_path):
    """The mixin's key on the command line does what the mixin does."""
    config = osp.join(REPO, 'configs', 'resnet',
                      'resnet18-w16_1xb64_10e_biased-mnist-small.py')
    log = train(config, tmp_path, '--cfg-options',
                *tiny_options(bmnist_root, 'resnet18', 'gdro'),
                'model.head.method.type=GroupDRO')
    assert "prepared ['GroupDRO']" in log
    state = torch.load(osp.join(tmp_path, 'epoch_1.pth'),
                       weights_only=True)['state_dict']
    assert state['head.method.q'].shape[1] > 1  # the groups were counted


@pytest.mark.slow
def test_lff_resume_keeps_ema_state(bmnist_root, tmp_path):
    cfg = method_config(tmp_path, 'resnet18', 'lff')
    train(cfg, tmp_path, '--cfg-options',
          *tiny_options(bmnist_root, 'resnet18', 'lff'))
    state = torch.load(osp.join(tmp_path, 'epoch_1.pth'),
                       weights_only=True)['state_dict']
    assert state['ema_biased'].numel() == 15
    assert bool(state['ema_updated'].all())
    log = train(cfg, tmp_path, '--resume', '--cfg-options',
                *tiny_options(bmnist_root, 'resnet18', 'lff', max_epochs=2))
    assert 'resumed epoch: 1' in log.lower() or 'Epoch(train) [2]' in log
    resumed = torch.load(osp.join(tmp_path, 'epoch_2.pth'),
                         weights_only=True)['state_dict']
    # the per-sample state came back through --resume (weights_only load)
    # and kept training; exactness of the round trip:
    # tests/test_engine/test_lff.py
    assert resumed['ema_biased'].numel() == 15
    assert not torch.equal(resumed['ema_biased'], state['ema_biased'])


@pytest.mark.parametrize('model', MODELS_)
@pytest.mark.parametrize('method', METHODS)
def test_method_configs_only_switch_the_method(tmp_path, model, method):
    """A method changes the head's method / the classifier only, and no
    config names a hook for it."""
    base = Config.fromfile(
        osp.join(REPO, 'configs', CONFIGS[model, 'biased_mnist_small'][0]))
    cfg = Config.fromfile(method_config(tmp_path, model, method))
    assert cfg.train_dataloader == base.train_dataloader
    assert cfg.optim_wrapper == base.optim_wrapper
    assert cfg.get('custom_hooks') == base.get('custom_hooks')
    if method == 'lff':
        assert cfg.model.type == 'LfFClassifier'
        debiased = cfg.model.get('debiased_model') or cfg.model.biased_model
        assert debiased.backbone == base.model.backbone
    else:
        assert cfg.model.backbone == base.model.backbone
        assert cfg.model.head.method.type == METHOD_TYPES[method]
        base.model.head.method = cfg.model.head.method
        assert cfg.model == base.model


# ------------------------------------------------------------ Colored MNIST
CMNIST_DATA = ('train_dataloader.dataset.num_samples=16',
               'val_dataloader.dataset.num_samples=10',
               'test_dataloader.dataset.num_samples=10',
               'train_dataloader.batch_size=8', 'val_dataloader.batch_size=10',
               'test_dataloader.batch_size=10', 'train_cfg.max_epochs=1',
               'default_hooks.logger.interval=1', 'randomness.seed=0')
NARROW_RESNET = ('backbone.stem_channels=8', 'backbone.base_channels=8')


@pytest.mark.slow
@pytest.mark.parametrize('name,extra', [
    ('mlp_colored_mnist_lff',
     ('model.biased_model.backbone.hidden_dims=[8]',
      'model.biased_model.head.in_channels=8')),
    ('resnet18_colored_mnist_pgi',
     tuple(f'model.{o}' for o in NARROW_RESNET)),
    ('occam_resnet18_colored_mnist_lff',
     tuple(f'model.{m}.{o}' for m in ('biased_model', 'debiased_model')
           for o in NARROW_RESNET)),
])
def test_colored_mnist_method_trains(tmp_path, name, extra):
    model, method = name.rsplit('_', 1)
    cfg = method_config(tmp_path, model.replace('_colored_mnist', ''),
                        method, 'colored_mnist')
    log = train(cfg, tmp_path / 'run', '--cfg-options', *CMNIST_DATA,
                *extra)
    assert 'Epoch(val)' in log and 'bias/unbiased_acc' in log


@pytest.mark.slow
def test_latent_debias_config_trains(tmp_path):
    """The latent de-biasing config end to end (untrained generator and
    target classifier so the test needs no checkpoint)."""
    ds = 'train_dataloader.dataset'
    log = train(
        osp.join(REPO, 'configs', 'latent_debias',
                 'latent-debias_mlp_1xb256_20e_binary-colored-mnist.py'),
        tmp_path,
        '--cfg-options', *[o for o in CMNIST_DATA if 'train_dataloader.dataset'
                           not in o],
        f'{ds}.dataset.num_samples=16', f'{ds}.num_pairs=4',
        f'{ds}.num_fit_samples=64', f'{ds}.generator.checkpoint=None',
        f'{ds}.generator.width=4', f'{ds}.target_scorer.checkpoint=None',
        # an untrained G's images: split the colour score at its median
        f'{ds}.protected_threshold=median',
        # an untrained h_t gives every image one class: score one class's
        # probability, split at its median, for a fittable target plane
        f'{ds}.target_scorer.score_class=0', f'{ds}.target_threshold=median',
        f'{ds}.target_scorer.model.backbone.hidden_dims=[8]',
        f'{ds}.target_scorer.model.head.in_channels=8',
        'model.backbone.hidden_dims=[8]', 'model.head.in_channels=8')
    assert 'Epoch(val)' in log
    for key in ('fairness/DEO', 'fairness/BA', 'fairness/KL', 'fairness/AP'):
        assert key in log
    # 16 real + 2 * 4 generated samples at batch 8: 3 iterations
    assert 'Epoch(train) [1][3/3]' in log


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('model', ('mlp', 'resnet18', 'occam_resnet18'))
def test_colored_mnist_configs_build(tmp_path, model, method):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(
        method_config(tmp_path, model, method, 'colored_mnist'))
    net = MODELS.build(cfg.model)
    if method == 'lff':
        assert type(net).__name__ == 'LfFClassifier'
    else:
        assert type(net.head.method).__name__ in (
            'GroupUpweighting', 'GroupDRO', 'SpectralDecoupling', 'PGILoss')
