"""CAM pictures: vis_cam.py PNGs, the CAM hook in a real Runner run, exit
shares per class."""
import glob
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from occam_plugin.engine.runner import build_runner

import occam_plugin  # noqa: F401  (registers)
from tests.helpers import REPO, write_bar_folder
from occam_plugin.visualization import draw_cam_grid, grid_size
from occam_plugin.errors import MissingKeyError

PANEL = 64


def _load_tool(name):
    path = osp.join(REPO, 'tools', 'analysis', name)
    spec = importlib.util.spec_from_file_location(name[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CONFIG = '''
custom_imports = dict(imports=['occam_plugin'], allow_failed_imports=False)
_base_ = [
    '{repo}/configs/_base_/models/occam_resnet18.py',
    '{repo}/configs/_base_/datasets/bar.py',
    '{repo}/configs/_base_/schedules/bar.py',
    '{repo}/configs/_base_/default_runtime.py',
]
model = dict(backbone=dict(stem_channels=8, base_channels=8),
             head=dict(num_classes=6))
data_root = '{root}'
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='RandomResizedCrop', scale=32),
    dict(type='PackBiasInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='ResizeEdge', scale=32, edge='short'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackBiasInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root,
                                     pipeline=train_pipeline))
val_dataloader = dict(batch_size=6, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root,
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, save_best=None))
custom_hooks = [
    dict(type='CAMVisualizationHook', interval=1, indices=(0, 5),
         panel_size={panel}),
]
randomness = dict(seed=0)
'''


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    """A 2-epoch Runner run on a tiny BAR folder with the CAM hook."""
    tmp = tmp_path_factory.mktemp('vis')
    root = write_bar_folder(tmp / 'BAR', per_class=2)
    cfg_file = tmp / 'occam_tiny_bar.py'
    cfg_file.write_text(CONFIG.format(repo=REPO, root=root, panel=PANEL))
    cfg = Config.fromfile(str(cfg_file))
    cfg.work_dir = str(tmp / 'work')
    runner = build_runner(cfg)  # SafeRunner, as the config says
    runner.train()
    return dict(cfg_file=str(cfg_file), root=root, runner=runner,
                ckpt=osp.join(cfg.work_dir, 'epoch_2.pth'))


@pytest.mark.slow
def test_hook_writes_grids_during_training(trained_run):
    runner = trained_run['runner']
    img_dir = osp.join(runner.log_dir, 'vis_data', 'vis_image')
    files = sorted(osp.basename(p) for p in glob.glob(osp.join(img_dir, '*')))
    # indices (0, 5) of the val split (6 images) at epochs 1 and 2
    assert files == ['cam_0_1.png', 'cam_0_2.png', 'cam_5_1.png',
                     'cam_5_2.png']
    import mmcv
    img = mmcv.imread(osp.join(img_dir, 'cam_5_2.png'))
    assert img.shape == grid_size(4, PANEL) + (3, )
    assert img.std() > 0  # a picture, not a blank canvas


def test_hook_rejects_bad_config():
    from mmpretrain.registry import HOOKS
    with pytest.raises(ValueError, match="target='both'"):
        HOOKS.build(dict(type='CAMVisualizationHook', target='both'))
    with pytest.raises(ValueError, match='interval=0'):
        HOOKS.build(dict(type='CAMVisualizationHook', interval=0))


@pytest.mark.slow
def test_vis_cam_writes_one_png_per_image(trained_run, tmp_path):
    vis_cam = _load_tool('vis_cam.py')
    images = sorted(glob.glob(osp.join(trained_run['root'], 'test', '*.jpg')))
    images = [images[0], images[-1]]  # climbing_*, throwing_*
    out_dir = tmp_path / 'cams'
    written = vis_cam.main([
        trained_run['cfg_file'], trained_run['ckpt'], '--images', *images,
        '--out-dir', str(out_dir), '--panel-size', '48'
    ])
    assert len(written) == 2
    import mmcv
    for img_path, png in zip(images, written):
        name = osp.splitext(osp.basename(img_path))[0]
        assert png == osp.join(str(out_dir), f'{name}_cam.png')
        assert mmcv.imread(png).shape == grid_size(4, 48) + (3, )


@pytest.mark.slow
def test_vis_cam_model_predicts_like_the_runner(trained_run):
    """vis_cam must build the model as the Runner does (incl. the config's
    top-level data_preprocessor, i.e. the input normalisation), so its gates
    and exits are those of tools/test.py."""
    vis_cam = _load_tool('vis_cam.py')
    cfg = Config.fromfile(trained_run['cfg_file'])
    model = vis_cam.load_model(cfg, trained_run['ckpt'], 'cpu')
    runner_model = trained_run['runner'].model
    runner_model.eval()
    assert torch.equal(model.data_preprocessor.mean,
                       runner_model.data_preprocessor.mean)
    batch = next(iter(trained_run['runner'].test_dataloader))
    with torch.no_grad():
        ours = model.test_step(batch)
        ref = runner_model.test_step(batch)
    assert [d.exit_idx for d in ours] == [d.exit_idx for d in ref]
    torch.testing.assert_close(torch.stack([d.exit_gates for d in ours]),
                               torch.stack([d.exit_gates for d in ref]))


@pytest.mark.slow
def test_vis_cam_pred_target_and_bad_labels(trained_run, tmp_path):
    vis_cam = _load_tool('vis_cam.py')
    img = sorted(glob.glob(osp.join(trained_run['root'], 'test', '*.jpg')))[0]
    odd = tmp_path / 'holiday.jpg'
    odd.write_bytes(open(img, 'rb').read())
    # no class in the name: gt unknown -> a clear error, pred works
    with pytest.raises(SystemExit, match='no ground truth'):
        vis_cam.main([trained_run['cfg_file'], trained_run['ckpt'],
                      '--images', str(odd), '--out-dir', str(tmp_path)])
    written = vis_cam.main([
        trained_run['cfg_file'], trained_run['ckpt'], '--images', str(odd),
        '--out-dir', str(tmp_path), '--target', 'pred', '--panel-size', '32'
    ])
    assert osp.isfile(written[0])
    with pytest.raises(SystemExit, match="'jumping' is neither"):
        vis_cam.main([trained_run['cfg_file'], trained_run['ckpt'],
                      '--images', str(odd), '--out-dir', str(tmp_path),
                      '--gt-labels', 'jumping'])


def test_draw_cam_grid_marks_taken_exit():
    """The taken exit's panel is framed in red; the CAM maximum is drawn at
    the right place (jet colormap: red at the top, blue at the bottom)."""
    cam = np.zeros((4, 4), np.float32)
    cam[0, 0] = 1.0  # hot corner top-left
    rec = dict(image=np.full((8, 8, 3), 128, np.uint8), cams=[cam] * 3,
               gates=[0.1, 0.9, 0.2], exit_idx=1, pred_label=0, gt_label=0,
               target_label=0)
    grid = draw_cam_grid(rec, panel_size=64)
    h, w = grid_size(3, 64)
    assert grid.shape == (h, w, 3)
    top = h - 64  # panels start below the title band
    taken = grid[top:, 2 * 64:3 * 64]  # panel of exit 1
    other = grid[top:, 3 * 64:4 * 64]  # panel of exit 2

    def red(p):
        return (p[..., 0] > 200) & (p[..., 1] < 60) & (p[..., 2] < 60)

    assert red(taken[:, 1]).mean() > 0.9  # left border of the frame
    assert red(other[:, 1]).mean() < 0.1
    # CAM peak top-left -> red-ish there, bottom-right is cold (blue-ish)
    assert other[4, 4, 0] > other[4, 4, 2]
    assert other[-5, -5, 2] > other[-5, -5, 0]


def test_exit_shares_by_hand(tmp_path):
    tool = _load_tool('plot_exit_shares.py')
    # class 0: exits 1, 1, 3 -> [0, 2/3, 0, 1/3]; class 2: exit 2 -> [0,0,1,0]
    preds = [
        dict(gt_label=torch.tensor([0]), exit_idx=1,
             exit_scores=torch.zeros(4, 3)),
        dict(gt_label=torch.tensor([0]), exit_idx=1),
        dict(gt_label=torch.tensor([0]), exit_idx=3),
        dict(gt_label=torch.tensor([2]), exit_idx=2),
    ]
    stats = tool.exit_shares(preds)
    assert stats['classes'] == [0, 2]
    np.testing.assert_allclose(stats['shares'],
                               [[0, 2 / 3, 0, 1 / 3], [0, 0, 1, 0]])
    np.testing.assert_allclose(stats['overall'], [0, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(stats['counts'], [3, 1])
    import mmengine
    pkl = tmp_path / 'preds.pkl'
    mmengine.dump(preds, str(pkl))
    out = tmp_path / 'shares.png'
    tool.main([str(pkl), '--out', str(out), '--classes', 'a', 'b', 'c'])
    assert out.stat().st_size > 0
    with pytest.raises(MissingKeyError, match='lacks'):
        tool.exit_shares([dict(gt_label=1)])


@pytest.mark.parametrize('config, classes', [
    ('occamnets/occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py',
     [str(i) for i in range(10)]),
    ('occamnets/occamnets_resnet18_1xb256_100e_colored-mnist.py',
     [str(i) for i in range(10)]),
    ('occam_resnet18_bar.py', ['climbing', 'diving', 'fishing',
                               'pole vaulting', 'racing', 'throwing']),
])
def test_vis_cam_knows_the_classes_without_building_data(config, classes):
    # read from the dataset class, so no split is generated or opened
    vis = _load_tool('vis_cam.py')
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    assert vis.class_names(cfg) == classes
    with pytest.raises(SystemExit, match=r"prefix 'img' is not a class"):
        vis.resolve_labels(['x/img_1.png'], None, classes, need=True)


def test_class_activation_map_of_a_plain_resnet(tmp_path):
    """The plain classifier's map is its linear layer at every cell of the
    last feature map: its spatial mean is the model's logit of that class,
    and vis_cam.py draws it as one panel after the image."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from occam_plugin.visualization import collect_class_cams
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'resnet', 'resnet18-w16_1xb64_60e_bar-small.py'))
    cfg.model.backbone.update(stem_channels=8, base_channels=8)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    from mmpretrain.structures import DataSample
    batch = pseudo_collate([
        dict(inputs=torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8),
             data_samples=DataSample().set_gt_label(g)) for g in (2, 5)])
    recs = collect_class_cams(model, batch, target='gt')
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        logits = model(data['inputs'], mode='tensor')
    assert [r['target_label'] for r in recs] == [2, 5]
    for i, rec in enumerate(recs):
        assert len(rec['cams']) == 1 and rec['cams'][0].shape == (2, 2)
        assert abs(rec['cams'][0].mean() - logits[i, rec['gt_label']]) < 1e-4
        assert rec['pred_label'] == int(logits[i].argmax())
    pred = collect_class_cams(model, batch, target='pred')
    assert [r['target_label'] for r in pred] == [r['pred_label'] for r in recs]
    grid = draw_cam_grid(recs[0], panel_size=PANEL)
    assert grid.shape[:2] == grid_size(1, PANEL)

    # through the tool, with a checkpoint of that model
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, size=40)
    ckpt = tmp_path / 'resnet.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    vis_cam = _load_tool('vis_cam.py')
    images = sorted(glob.glob(osp.join(root, 'test', '*.jpg')))[:2]
    out = vis_cam.main([
        cfg.filename, str(ckpt), '--images', *images,
        '--out-dir', str(tmp_path / 'cams'), '--panel-size', str(PANEL),
        '--cfg-options', 'model.backbone.stem_channels=8',
        'model.backbone.base_channels=8'])
    assert len(out) == 2
    import mmcv
    assert mmcv.imread(out[0]).shape[:2] == grid_size(1, PANEL)


@pytest.mark.slow
def test_vis_cam_never_replaces_a_png_and_names_every_input(trained_run,
                                                            tmp_path):
    """An existing PNG in --out-dir is refused (before the model is built)
    unless --overwrite; two inputs of the same name (a/x.jpg, b/x.jpg) used
    to write one file."""
    import shutil
    vis_cam = _load_tool('vis_cam.py')
    img = sorted(glob.glob(osp.join(trained_run['root'], 'test', '*.jpg')))[0]
    name = osp.splitext(osp.basename(img))[0]
    twins = []
    for sub in ('a', 'b'):
        (tmp_path / sub).mkdir()
        twins.append(str(tmp_path / sub / osp.basename(img)))
        shutil.copy(img, twins[-1])
    out_dir = tmp_path / 'cams'
    args = [trained_run['cfg_file'], trained_run['ckpt'], '--images', *twins,
            '--out-dir', str(out_dir), '--panel-size', '32']
    written = vis_cam.main(args)
    assert written == [str(out_dir / f'{name}_cam.png'),
                       str(out_dir / f'{name}_2_cam.png')]
    before = [open(p, 'rb').read() for p in written]
    (out_dir / 'note.txt').write_text('other files are no concern')
    with pytest.raises(SystemExit) as err:
        vis_cam.main(args)
    assert f"{written[0]!r} exists and was not written by this run" in \
        str(err.value)
    assert '--overwrite' in str(err.value)
    assert [open(p, 'rb').read() for p in written] == before
    assert vis_cam.main(args + ['--overwrite']) == written


def test_vis_cam_takes_a_shipped_config_by_name(tmp_path):
    """Outside a clone the configs go by name, as tools/train.py takes them:
    the name resolves, so the first refusal is about the checkpoint."""
    vis_cam = _load_tool('vis_cam.py')
    image = tmp_path / 'climbing_0.jpg'
    image.write_bytes(b'')
    for config in ('occamnets_resnet18-w16_1xb64_60e_bar-small',
                   'configs/occamnets/occamnets_resnet18-w16_1xb64_60e_'
                   'bar-small.py'):
        with pytest.raises(SystemExit, match='checkpoint file'):
            vis_cam.main([config, str(tmp_path / 'none.pth'), '--images',
                          str(image), '--out-dir', str(tmp_path / 'out')])
    with pytest.raises(SystemExit, match='config: .*no_such_config'):
        vis_cam.main(['no_such_config', str(tmp_path / 'none.pth'),
                      '--images', str(image), '--out-dir',
                      str(tmp_path / 'out')])
