"""Evaluate a checkpoint on the config's test set (occam-plugin).

    python tools/test.py configs/occam_resnet18_bar.py work_dirs/occam_bar/epoch_90.pth
    python tools/test.py CONFIG CKPT --out results.pkl    # also dump predictions
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, ConfigDict, DictAction
from occam_plugin.engine.runner import (CheckpointError, build_runner,
                                        setup_cpu_distributed)

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test a checkpoint (mmpretrain config + occam_plugin)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='folder for the test logs (default: '
        'work_dirs/<config name>)')
    parser.add_argument(
        '--out', help='dump every sample\'s prediction (pred_label, '
        'pred_score and, for OccamNets, exit_idx / exit_scores / exit_gates) '
        'to this pickle file')
    parser.add_argument(
        '--non-strict', action='store_true',
        help='load checkpoint weights partially: keys that are missing, '
        'unexpected or of another shape are skipped with a warning '
        '(default: they are an error that lists them)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, key=value')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg, args):
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.non_strict:
        cfg.strict_load = False
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'--out must be a .pkl file, got {args.out!r}.')
        dump = ConfigDict(type='DumpResults', out_file_path=args.out)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    for name in DATALOADERS:
        loader = cfg.get(name)
        if loader is not None and not loader.get('num_workers', 0):
            loader['persistent_workers'] = False
    return cfg


def main(argv=None):
    args = parse_args(argv)
    for path, what in ((args.config, 'config'),
                       (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} file {path!r} does not exist.')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    setup_cpu_distributed(cfg)
    try:
        runner = build_runner(cfg)
        metrics = runner.test()
    except CheckpointError as err:  # its message names the file and the fix
        raise SystemExit(f'error: {err}') from err
    return metrics


if __name__ == '__main__':
    main()
