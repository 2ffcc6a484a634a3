"""Evaluate a checkpoint on the config's test set (occam-plugin).

    python tools/test.py configs/occam_resnet18_bar.py \
        work_dirs/occam_bar/epoch_90.pth
    python tools/test.py CONFIG CKPT --out results.pkl  # also dump predictions
"""
import argparse

from mmengine.config import ConfigDict

from occam_plugin import cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test a checkpoint (mmpretrain config + occam_plugin)')
    parser.add_argument(
        'config', help='config file path, or the name of a shipped config '
        '(occam_plugin.list_configs())')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='dump every sample\'s prediction (pred_label, '
        'pred_score and, for OccamNets, exit_idx / exit_scores / exit_gates) '
        'to this pickle file (read it back with '
        'occam_plugin.evaluation.load_predictions)')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='replace the --out file if it exists (default: an existing '
        'file is refused, before the test runs)')
    cli.add_common_args(parser, 'folder for the test logs')
    return cli.parse(parser, argv)


def merge_args(cfg, args):
    """Apply the command line to the config (CLI > config file)."""

    def test_args(cfg):
        cfg.load_from = args.checkpoint
        cfg.resume = False

    cfg = cli.apply_common_args(cfg, args, test_args)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'--out must be a .pkl file, got {args.out!r}.')
        from occam_plugin.fileio import drop_symlink, refuse_overwrite
        try:  # before the test runs, not after it
            refuse_overwrite(args.out, args.overwrite, '--out')
        except OSError as err:
            raise SystemExit(f'error: {err}') from err
        # --overwrite replaces a link at --out, never its target (mmengine's
        # DumpResults writes the file with a plain open)
        drop_symlink(args.out)
        dump = ConfigDict(type='DumpResults', out_file_path=args.out)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_args(
        cli.load_config(args, [(args.checkpoint, 'checkpoint')]), args)
    return cli.launch(cfg, 'test')


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
