"""Train a model from an mmpretrain-style config (occam-plugin).

    python tools/train.py configs/occam_resnet18_bar.py --work-dir work_dirs/occam_bar
    python tools/train.py CONFIG --resume            # latest checkpoint of work_dir
    python tools/train.py CONFIG --resume work_dirs/x/epoch_3.pth
    python tools/train.py CONFIG --cfg-options model.backbone.type=TIMMBackbone ...
    torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch   # CPU: gloo
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from occam_plugin.engine.runner import (CheckpointError, build_runner,
                                        setup_cpu_distributed)

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a model (mmpretrain config + occam_plugin)')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--work-dir', help='folder for logs and checkpoints (default: '
        'work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision (needs a CUDA device)')
    parser.add_argument(
        '--no-validate', action='store_true',
        help='do not validate during training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the lr by total batch size / auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--non-strict', action='store_true',
        help='load checkpoint weights partially: keys that are missing, '
        'unexpected or of another shape are skipped with a warning '
        '(default: they are an error that lists them)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, key=value (e.g. '
        'model.backbone.type=TIMMBackbone train_dataloader.batch_size=32); '
        'lists as key="[a,b]"')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torchrun sets LOCAL_RANK)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def fix_dataloaders(cfg):
    """``persistent_workers`` is only valid with worker processes."""
    for name in DATALOADERS:
        loader = cfg.get(name)
        if loader is not None and not loader.get('num_workers', 0):
            loader['persistent_workers'] = False


def merge_args(cfg, args):
    """Apply the command line to the config (CLI > config file)."""
    cfg.launcher = args.launcher
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a CUDA device (mmengine\'s '
                             'AmpOptimWrapper); none is available here.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f'--resume: checkpoint {args.resume!r} does not '
                             'exist.')
        cfg.resume = True
        cfg.load_from = args.resume
    if args.non_strict:
        cfg.strict_load = False
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    fix_dataloaders(cfg)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise SystemExit(f'config file {args.config!r} does not exist.')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    # CPU-only multi-process: open the gloo group ourselves (mmengine's
    # pytorch launcher would call torch.cuda.set_device).
    setup_cpu_distributed(cfg)

    try:
        runner = build_runner(cfg)
        runner.train()
    except CheckpointError as err:  # its message names the file and the fix
        raise SystemExit(f'error: {err}') from err


if __name__ == '__main__':
    main()
