"""One short real training run per dataset family through tools/train.py
(and the demo's own path), checking the metrics JSON in the work_dir.

Tiny on purpose: 32 px Biased MNIST / 28 px Colored MNIST / 64 px
COCO-on-Places h5, a few dozen samples, width-8 trunks, 1 epoch.
"""
import glob
import json
import os
import os.path as osp

import numpy as np
import pytest

from tests.helpers import (LOADERS, REPO, TINY_RESNET_OPTIONS,
                           bmnist_data_options, load_tool)

pytestmark = pytest.mark.slow  # trainings and tool runs


def _common(work_dir, batch=8):
    opts = [f'{name}.batch_size={batch}' for name in LOADERS]
    opts += [f'{name}.num_workers=0' for name in LOADERS]
    return ['--work-dir', str(work_dir), '--cfg-options', *opts,
            'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
            'randomness.seed=0']


def _metrics_json(work_dir, name):
    found = glob.glob(osp.join(str(work_dir), '*', name))
    assert len(found) == 1, f'{name} not in {work_dir}/<timestamp>/: {found}'
    with open(found[0], encoding='utf-8') as f:
        return json.load(f)


def _train(argv):
    load_tool('train.py').main(argv)


def test_occam_biased_mnist_train(tmp_path):
    work = tmp_path / 'work'
    data = tmp_path / 'bmnist'
    opts = list(bmnist_data_options(data))
    _train([osp.join(REPO, 'configs', 'occamnets',
                     'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py'),
            *_common(work), *opts, *TINY_RESNET_OPTIONS])
    bias = _metrics_json(work, 'bias_metrics.json')
    for key in ('bias/acc', 'bias/unbiased_acc', 'bias/worst_group_acc',
                'bias/num_empty_groups', 'bias/digit_color_aligned_acc',
                'bias/texture_conflicting_acc'):
        assert key in bias['metrics'], key
    # the run's validation: full_0.5 at val_ixs, round(46 / 6) = 8 images
    assert bias['num_samples'] == 8
    # 8 samples over 100 class x colour groups: most groups are empty, and
    # the file says so
    assert bias['metrics']['bias/num_empty_groups'] >= 92
    assert 'non-empty groups only' in bias['sparse_groups']
    exits = _metrics_json(work, 'exit_metrics.json')
    shares = [exits['metrics'][f'exit/share_e{k}'] for k in range(4)]
    assert sum(shares) == pytest.approx(100.0)
    assert shares[0] == 0.0  # exit 0 is never used at inference
    # FLOPs carried on the predictions: increasing, ratio within (0, 1]
    flops = exits['exit_flops']
    assert all(a < b for a, b in zip(flops, flops[1:]))
    assert 0 < exits['metrics']['exit/expected_compute'] <= 1


def test_mlp_colored_mnist_train(tmp_path):
    work = tmp_path / 'work'
    _train([osp.join(REPO, 'configs', 'mlp',
                     'mlp_1xb256_100e_colored-mnist.py'),
            *_common(work, batch=16),
            'train_dataloader.dataset.num_samples=48',
            'val_dataloader.dataset.num_samples=40',
            'test_dataloader.dataset.num_samples=40'])
    m = _metrics_json(work, 'bias_metrics.json')['metrics']
    for key in ('bias/unbiased_acc', 'bias/aligned_acc',
                'bias/conflicting_acc', 'bias/color_conflicting_acc'):
        assert key in m, key


def _write_coco_h5(root, n=12, size=64, seed=0):
    import h5py
    rng = np.random.default_rng(seed)
    root.mkdir()
    for split in ('train', 'validtest', 'sgtest'):
        with h5py.File(root / f'{split}.h5py', 'w') as f:
            # official layout: N x 3 x H x W float in [0, 1], y, g
            f['images'] = rng.random((n, 3, size, size), dtype=np.float32)
            f['y'] = np.arange(n) % 9
            f['g'] = (np.arange(n) // 9) % 2
    return root


def test_resnet_coco_on_places_train(tmp_path):
    work = tmp_path / 'work'
    data = _write_coco_h5(tmp_path / 'coco_on_places')
    _train([osp.join(REPO, 'configs', 'resnet',
                     'resnet18_1xb128_90e_coco-on-places.py'),
            *_common(work, batch=6),
            *[f'{n}.dataset.data_root={data}' for n in LOADERS],
            *TINY_RESNET_OPTIONS, 'model.head.in_channels=64'])
    m = _metrics_json(work, 'bias_metrics.json')['metrics']
    assert m['bias/num_groups'] == 18
    for key in ('bias/unbiased_acc', 'bias/aligned_acc',
                'bias/conflicting_acc'):
        assert key in m, key


def test_demo_pair_and_table(tmp_path, capsys):
    demo = load_tool('demo.py')
    results = demo.main([
        '--epochs', '1', '--num-trainval', '30', '--num-test', '12',
        '--data-root', str(tmp_path / 'data'), '--work-dir',
        str(tmp_path / 'demo')
    ])
    out = capsys.readouterr().out
    assert 'unbiased accuracy' in out and 'exit 1: share' in out
    assert 'OccamResNet - ResNet, unbiased accuracy' in out
    # a quiet console: each model's epoch, val and test lines, passed on
    # from its process; mmengine's full log stays in the run's folder
    for name in ('ResNet-18', 'OccamResNet-18'):
        assert f'{name}: epoch 1/1 ' in out and f'{name}: test: ' in out
    assert 'Epoch(train)' not in out and len(out) < 6000
    assert set(results) == {'resnet', 'occam'}
    assert 'bias/unbiased_acc' in results['resnet']
    assert 'exit/share_e3' in results['occam']
    # default --jobs 2: one process per model, each with its own log
    for m in ('resnet', 'occam'):
        assert (tmp_path / 'demo' / f'{m}.log').is_file()
        assert 'bias/unbiased_acc' in results[m]['val']  # from full_0.5
    summary = json.load(open(tmp_path / 'demo' / 'summary.json'))
    assert summary['results']['occam']['bias/unbiased_acc'] == \
        results['occam']['bias/unbiased_acc']
    # the demo's numbers are the test split's (12 samples), read from JSON
    test_json = osp.join(results['occam']['log_dir'], 'bias_metrics.json')
    assert json.load(open(test_json))['num_samples'] == 12
    # a second demo into the same folder is refused before it trains
    before = open(tmp_path / 'demo' / 'summary.json').read()
    with pytest.raises(SystemExit, match='holds an earlier demo'):
        demo.main(['--epochs', '1', '--data-root', str(tmp_path / 'data'),
                   '--work-dir', str(tmp_path / 'demo')])
    assert open(tmp_path / 'demo' / 'summary.json').read() == before
    # without --work-dir, the next free folder is taken
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        os.makedirs(osp.join('work_dirs', 'demo', 'occam'))
        assert demo.claim_work_dir(None, ['occam']) == osp.join(
            'work_dirs', 'demo_2')
    finally:
        os.chdir(cwd)


def test_demo_prepare_only_generates_data_and_trains_nothing(tmp_path):
    demo = load_tool('demo.py')
    data, work = tmp_path / 'data', tmp_path / 'demo'
    assert demo.main(['--prepare-only', '--p-bias', '0.8', '--num-trainval',
                      '24', '--num-test', '10', '--data-root', str(data),
                      '--work-dir', str(work)]) == {}
    # the released layout: train reads full_0.8, val full_0.5, test full
    for folder, subset, n in (('full_0.8', 'trainval', 24),
                              ('full_0.5', 'trainval', 24),
                              ('full', 'test', 10)):
        records = json.load(open(data / folder / f'{subset}.json'))
        assert len(records) == n
        params = json.load(open(data / folder / f'{subset}_params.json'))
        assert params['image_size'] == 80  # the small protocol's
    ixs = [json.load(open(data / f'{s}_ixs.json')) for s in ('train', 'val')]
    assert sorted(ixs[0] + ixs[1]) == list(range(24))
    assert not work.exists()  # no run, no checkpoint, no summary


def test_demo_twice_gives_the_same_numbers(tmp_path):
    """Same seed, same machine: two demos on the same data train the same
    weights (the logged losses of every iteration) and print the same
    metrics, to the last digit. (Another CPU kind runs other float kernels:
    the README gives the measured spread.)"""
    demo = load_tool('demo.py')
    runs = []
    for name in ('first', 'second'):
        work = tmp_path / name
        results = demo.main([
            '--epochs', '2', '--num-trainval', '60', '--num-test', '20',
            '--data-root', str(tmp_path / 'data'), '--work-dir', str(work)])
        losses = {}
        for m in ('resnet', 'occam'):
            scalars = glob.glob(osp.join(results[m]['log_dir'], 'vis_data',
                                         'scalars.json'))
            assert len(scalars) == 1, scalars
            with open(scalars[0]) as f:
                rows = [json.loads(line) for line in f]
            losses[m] = [r['loss'] for r in rows if 'loss' in r]
            assert losses[m], rows[:3]
        metrics = {m: {k: v for k, v in results[m].items()
                       if k not in ('log_dir', 'train_seconds')}
                   for m in ('resnet', 'occam')}
        runs.append((losses, metrics))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    assert runs[0][1]['occam']['val']  # the val metrics are compared too
