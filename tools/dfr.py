"""DFR, Deep Feature Reweighting (Kirichenko et al., ICLR 2023): retrain the
last layer(s) of a trained model on group-balanced val data.

    python tools/dfr.py CONFIG CHECKPOINT --work-dir work_dirs/dfr
    python tools/test.py CONFIG work_dirs/dfr/dfr_epoch_90.pth   # test it

Writes <work-dir>/dfr_<checkpoint name>.pth (the whole model, the trunk as
trained; loadable strictly) and .json (the chosen C per layer, the tuning
scores, val metrics before and after, accuracies in percent as BiasMetric's).
On an OccamNet every exit used at inference is retrained on its own features
(the spatial mean of the exit's features feeds its 1x1 CAM conv).
"""
import argparse
import os.path as osp

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='DFR: retrain the last layer(s) on balanced val data')
    parser.add_argument('config', help='config of the trained model')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('--work-dir', required=True,
                        help='folder for dfr_<name>.pth and .json')
    parser.add_argument('--balance', choices=['group', 'class'],
                        default=None, help='balance val by group (DFR, the '
                        'default) or by class (no bias annotations)')
    parser.add_argument('--scaler', choices=['train', 'val'], default=None,
                        help='standardise the final fit with the training '
                        "set's feature statistics (the reference, default) "
                        "or val's")
    parser.add_argument('--c', type=float, nargs='+', default=None,
                        help='the C grid (default: the reference\'s 1 0.7 '
                        '0.3 0.1 0.07 0.03 0.01)')
    parser.add_argument('--num-retrains', type=int, default=None,
                        help='balanced subsets averaged (default 20)')
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing output files')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from occam_plugin.apis.dfr import C_OPTIONS, NUM_RETRAINS, run_dfr
    for path, what in ((args.config, 'config'),
                       (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} file {path!r} does not exist.')
    # the config's dfr = dict(...) gives defaults; the command line wins
    dfr = dict(Config.fromfile(args.config).get('dfr') or {})
    unknown = set(dfr) - {'balance', 'scaler', 'c_options', 'num_retrains',
                          'seed', 'layers'}
    if unknown:
        raise SystemExit(f'error: {args.config}: dfr has unknown keys '
                         f'{sorted(unknown)}')
    pick = (lambda cli, key, default: cli if cli is not None
            else dfr.get(key, default))
    try:
        result = run_dfr(
            args.config, args.checkpoint, args.work_dir,
            cfg_options=args.cfg_options,
            c_options=pick(args.c, 'c_options', C_OPTIONS),
            num_retrains=pick(args.num_retrains, 'num_retrains',
                              NUM_RETRAINS),
            balance=pick(args.balance, 'balance', 'group'),
            scaler=pick(args.scaler, 'scaler', 'train'),
            layers=dfr.get('layers', 'auto'),
            seed=pick(args.seed, 'seed', 0), overwrite=args.overwrite)
    except (OSError, ValueError) as err:
        raise SystemExit(f'error: {err}') from err
    # percent, as BiasMetric prints them
    for layer, fit in result['layers'].items():
        tuning = ', '.join(f'{c:g}: {v:.2f}%' for c, v in
                           fit['tuning'].items())
        print(f'[dfr] {layer}: C={fit["C"]} (worst-{result["balance"]}'
              f' accuracy on the scoring half per C: {tuning})')
    print(f'[dfr] val worst {result["val_before"]["worst"]:.2f}% -> '
          f'{result["val_after"]["worst"]:.2f}% (fitted on val); '
          f'wrote {result["output"]}')
    return result


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
