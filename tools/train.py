"""Train a model from an mmpretrain-style config (occam-plugin).

    python tools/train.py configs/occam_resnet18_bar.py \
        --work-dir work_dirs/occam_bar
    python tools/train.py CONFIG --resume     # latest checkpoint of work_dir
    python tools/train.py CONFIG --resume work_dirs/x/epoch_3.pth
    python tools/train.py CONFIG \
        --cfg-options model.backbone.type=TIMMBackbone ...
    # CPU: gloo
    torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch
"""
import argparse
import os.path as osp

from occam_plugin import cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a model (mmpretrain config + occam_plugin)')
    parser.add_argument(
        'config', help='config file path, or the name of a shipped config '
        '(occam_plugin.list_configs())')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision: fp16 with dynamic loss scaling on '
        'a CUDA device, bf16 on a CPU with native bf16 (AVX-512 BF16 or AMX)')
    parser.add_argument(
        '--no-validate', action='store_true',
        help='do not validate during training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the lr by total batch size / '
        'auto_scale_lr.base_batch_size')
    cli.add_common_args(parser, 'folder for logs and checkpoints')
    return cli.parse(parser, argv)


def merge_args(cfg, args):
    """Apply the command line to the config (CLI > config file)."""

    def train_args(cfg):
        if args.no_validate:
            cfg.val_cfg = None
            cfg.val_dataloader = None
            cfg.val_evaluator = None
        if args.amp:
            cli.use_amp(cfg)
        if args.resume == 'auto':
            cfg.resume = True
            cfg.load_from = None
        elif args.resume is not None:
            if not osp.isfile(args.resume):
                raise SystemExit(f'--resume: checkpoint {args.resume!r} does '
                                 'not exist.')
            cfg.resume = True
            cfg.load_from = args.resume
        if args.auto_scale_lr:
            cfg.auto_scale_lr.enable = True

    return cli.apply_common_args(cfg, args, train_args)


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_args(cli.load_config(args), args)
    cli.launch(cfg, 'train')


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
