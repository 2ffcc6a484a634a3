"""JTT, "Just Train Twice" (Liu et al., ICML 2021): both stages, one command.

    python tools/jtt.py CONFIG --work-dir work_dirs/jtt --epochs-id 60 \
        --lambda-up 100
    # identify with another model
    python tools/jtt.py CONFIG --work-dir ... --id-config configs/resnet/...
    # again after a kill: finishes what is left
    python tools/jtt.py CONFIG ...

Stage 1 trains the identification model for T epochs into
<work-dir>/identification/ and writes the training samples it misclassifies
to <work-dir>/error_set.json; stage 2 trains CONFIG with those samples
repeated lambda_up more times (<work-dir>/upsampled.py, a config that
tools/train.py trains as it is) into <work-dir>/upsampled/. T and lambda_up
may come from the config: jtt = dict(identification_epochs=60, lambda_up=100).
"""
import argparse

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='JTT: identification run, error set, upsampled run')
    parser.add_argument('config', help='config of the final model')
    parser.add_argument('--work-dir', required=True,
                        help='the JTT folder (identification/, '
                        'error_set.json, upsampled.py, upsampled/)')
    parser.add_argument('--epochs-id', type=int, default=None,
                        help='T: epochs of the identification run (default: '
                        'jtt.identification_epochs of the config)')
    parser.add_argument('--lambda-up', type=int, default=None,
                        help='extra copies of each error-set sample '
                        '(default: jtt.lambda_up of the config)')
    parser.add_argument('--id-config', default=None,
                        help='config of the identification model (default: '
                        'CONFIG); same training set')
    parser.add_argument('--stop-after', choices=['identification'],
                        help='end once the error set is written')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides for both stages, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from occam_plugin.apis.jtt import run_jtt
    try:
        return run_jtt(args.config, args.work_dir,
                       identification_epochs=args.epochs_id,
                       lambda_up=args.lambda_up,
                       cfg_options=args.cfg_options,
                       identification_config=args.id_config,
                       stop_after=args.stop_after)
    except (OSError, ValueError) as err:
        raise SystemExit(f'error: {err}') from err


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
