"""Bias-mitigation method benchmarks (issue 4). Not a test.

    python benchmarks/methods.py colored --seeds 0 1 2 --epochs 20
    python benchmarks/methods.py biased --seeds 0 --epochs 3 --width 16
    python benchmarks/methods.py colored ... --results-md docs/results.md

colored: Colored MNIST (1 % bias-conflicting), vanilla vs LfF, on the LfF MLP
         and on a ResNet-18 (width ``--width``); aligned / conflicting /
         unbiased test accuracy (the configs validate on the unbiased test
         split), mean +- std over seeds.
biased:  Biased MNIST small (the `make demo` protocol), {ResNet-18,
         OccamResNet-18} x {ERM, UpWt, gDRO, SD, LfF, PGI}: unbiased accuracy
         mean +- std over seeds.

Every run is ``tools/train.py`` on the configs of ``configs/`` and
``configs/lff/`` with ``--cfg-options`` for seed/epochs/width/size only;
the numbers are the final validation of each run (read from
``<work_dir>/<timestamp>/vis_data/scalars.json``). ``--jobs N`` runs N
trainings at once, each with its share of the CPU threads. With
``--results-md`` the table replaces this suite's section of that file.
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import (PYTHON, machine, mean_std, run_commands,  # noqa: E402
                    write_section)
from occam_plugin.engine.runner import checkpoint_files  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
KEYS = ('bias/aligned_acc', 'bias/conflicting_acc', 'bias/unbiased_acc')


#: the method module each method switches on (model.head.method.type);
#: LfF is a twin model: its own config in configs/lff/
METHOD_TYPES = dict(upwt='GroupUpweighting', gdro='GroupDRO',
                    sd='SpectralDecoupling', pgi='PGILoss')


def resnet_width(prefixes, width):
    # the heads read their in_channels from the narrowed backbones
    opts = []
    for p in prefixes:
        opts += [f'{p}.backbone.stem_channels={width}',
                 f'{p}.backbone.base_channels={width}']
    return opts


def colored_jobs(args):
    m = 'configs/lff'
    w = args.width
    return [
        ('MLP', 'vanilla', 'configs/mlp/mlp_1xb256_100e_colored-mnist.py', []),
        ('MLP', 'LfF', f'{m}/lff_mlp_1xb256_100e_colored-mnist.py', []),
        ('ResNet-18', 'vanilla',
         'configs/resnet/resnet18_1xb256_100e_colored-mnist.py',
         resnet_width(['model'], w)),
        ('ResNet-18', 'LfF', f'{m}/lff_resnet18_1xb256_100e_colored-mnist.py',
         resnet_width(['model.biased_model'], w)),
    ]


#: model -> its ERM config and its LfF config (Biased MNIST small)
BIASED_CONFIGS = dict(
    resnet18=(
        'configs/resnet/resnet18-w16_1xb64_10e_biased-mnist-small.py',
        'configs/lff/lff_resnet18-w16_1xb64_10e_biased-mnist-small.py'),
    occam_resnet18=(
        'configs/occamnets/'
        'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py',
        'configs/lff/'
        'lff_occamnets-resnet18-w16_1xb64_10e_biased-mnist-small.py'))


def biased_jobs(args):
    w, jobs = args.width, []
    for model in ('resnet18', 'occam_resnet18'):
        name = 'ResNet-18' if model == 'resnet18' else 'OccamResNet-18'
        for method in ('erm', 'upwt', 'gdro', 'sd', 'lff', 'pgi'):
            cfg = BIASED_CONFIGS[model][0]
            if method == 'lff':
                cfg = BIASED_CONFIGS[model][1]
                parts = ['model.biased_model'] + (
                    ['model.debiased_model'] if model != 'resnet18' else [])
                opts = resnet_width(parts, w)
            else:
                opts = resnet_width(['model'], w)
            if method in METHOD_TYPES:  # the mixin's key, by --cfg-options
                opts.append(f'model.head.method.type={METHOD_TYPES[method]}')
            # the lr steps keep their place in a shortened schedule
            opts.append('param_scheduler.milestones=[{},{}]'.format(
                max(1, round(args.epochs * 50 / 90)),
                max(1, round(args.epochs * 70 / 90))))
            if args.train_samples:
                # other generation params: their own data folder
                root = osp.join(args.work_root, f'data_n{args.train_samples}')
                opts += [f'{loader}.dataset.{k}={v}' for loader in
                         ('train_dataloader', 'val_dataloader',
                          'test_dataloader')
                         for k, v in (('data_root', root),
                                      ('generate.num_trainval',
                                       args.train_samples))]
            jobs.append((name, method.upper() if method != 'gdro' else
                         'gDRO', cfg, opts))
    return jobs


def final_metrics(work_dir):
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')), key=osp.getmtime)
    if not files:
        return None
    last = None
    with open(files[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if 'bias/unbiased_acc' in rec:
                last = rec
    return last


def run(args, jobs):
    tags, cmds, meta = [], [], []
    for model, method, cfg, opts in jobs:
        for seed in args.seeds:
            tag = f'{args.suite}/{model}_{method}_s{seed}'.replace(' ', '')
            work_dir = osp.join(args.work_root, tag)
            cmds.append([PYTHON, osp.join(REPO, 'tools', 'train.py'),
                         osp.join(REPO, cfg), '--work-dir', work_dir,
                         '--cfg-options', f'randomness.seed={seed}',
                         f'train_cfg.max_epochs={args.epochs}',
                         f'train_cfg.val_interval={args.epochs}',
                         'default_hooks.logger.interval=50', *opts])
            tags.append((tag, work_dir))
            meta.append((model, method, seed))
    rows, todo = [], list(range(len(cmds)))
    if args.reuse_finished:  # runs whose final validation is on disk
        done = [i for i in todo if final_metrics(tags[i][1]) is not None]
        todo = [i for i in todo if i not in done]
        for i in done:
            model, method, seed = meta[i]
            res = final_metrics(tags[i][1])
            print(f'{tags[i][0]}: reused from {tags[i][1]}')
            rows.append(dict(order=i, model=model, method=method, seed=seed,
                             seconds=0.0, cmd=' '.join(cmds[i][1:]),
                             reused=True, **{k: res.get(k) for k in KEYS}))
    # tools/train.py refuses a work dir that holds another run's
    # checkpoints: say so once, before anything trains
    used = [tags[i][1] for i in todo if checkpoint_files(tags[i][1])]
    if used:
        raise SystemExit(
            f'{len(used)} run folder(s) already hold checkpoints, e.g. '
            f'{used[0]}; pass --reuse-finished (finished runs), a new '
            '--work-root, or remove them.')
    for j, rc, dt, tail in run_commands(
            [cmds[i] for i in todo], args.jobs,
            osp.join(args.work_root, args.suite, 'logs'), args.threads):
        i = todo[j]
        tag, work_dir = tags[i]
        model, method, seed = meta[i]
        res = final_metrics(work_dir) if rc == 0 else None
        if res is None:
            print(f'FAILED {tag} ({dt:.0f} s):\n{tail}')
        else:
            print(f'{tag}: ' + ', '.join(
                f'{k}={res.get(k, float("nan")):.2f}' for k in KEYS) +
                f' ({dt:.0f} s)', flush=True)
        rows.append(dict(order=i, model=model, method=method, seed=seed,
                         seconds=dt, cmd=' '.join(cmds[i][1:]),
                         **({k: res.get(k) for k in KEYS} if res else {})))
    return sorted(rows, key=lambda r: r['order'])


def table(rows, keys):
    groups = {}
    for r in rows:
        groups.setdefault((r['model'], r['method']), []).append(r)
    head = '| model | method | seeds | ' + ' | '.join(
        k.split('/')[1] for k in keys) + ' |'
    lines = [head, '|' + '---|' * (3 + len(keys))]
    for (model, method), rs in groups.items():
        cells = [mean_std([r.get(k) for r in rs], digits=1) for k in keys]
        cells = ['failed' if c == '-' else c for c in cells]
        lines.append(f'| {model} | {method} | {len(rs)} | ' +
                     ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('suite', choices=['colored', 'biased'])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--width', type=int, default=16)
    p.add_argument('--train-samples', type=int, default=None,
                   help='trainval renderings of the Biased MNIST data '
                   '(default: the config\'s)')
    p.add_argument('--models', nargs='+', default=None,
                   help='only these models (e.g. MLP ResNet-18)')
    p.add_argument('--jobs', type=int, default=1,
                   help='trainings at a time (each gets cpu_count / jobs '
                   'threads)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads per run (default: cpu_count / jobs)')
    p.add_argument('--reuse-finished', action='store_true',
                   help='take the numbers of runs already finished in '
                   '--work-root instead of training them again (to finish '
                   'an interrupted benchmark)')
    p.add_argument('--work-root', default='work_dirs/bench_methods')
    p.add_argument('--results-md', default=None,
                   help='write the table into this markdown file (its own '
                   'section per suite and model set)')
    args = p.parse_args(argv)
    jobs = colored_jobs(args) if args.suite == 'colored' else \
        biased_jobs(args)
    if args.models:
        jobs = [j for j in jobs if j[0] in args.models]
    start = datetime.datetime.now(datetime.timezone.utc)
    rows = run(args, jobs)
    os.makedirs(args.work_root, exist_ok=True)
    name = args.suite + ('_' + '_'.join(args.models) if args.models else '')
    with open(osp.join(args.work_root, f'{name}.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    keys = KEYS if args.suite == 'colored' else ('bias/unbiased_acc', )
    total = sum(r['seconds'] for r in rows)
    title = ('Colored MNIST (1 % bias-conflicting)' if args.suite == 'colored'
             else 'Biased MNIST, small CPU protocol')
    md = (f'### {title}: {", ".join(args.models or ["all models"])}\n\n'
          f'- command: `python benchmarks/methods.py '
          f'{" ".join(argv or sys.argv[1:])}`\n'
          f'- machine: {machine()}, {args.jobs} run(s) at a time\n'
          f'- date: {start:%Y-%m-%d %H:%M} UTC, {total / 60:.1f} min of runs '
          f'in all\n'
          f'- {args.epochs} epochs, seeds {args.seeds}, ResNet width '
          f'{args.width}; final validation on the unbiased split (%, mean ± '
          f'std over seeds)\n\n' + table(rows, keys) + '\n')
    print(md)
    if args.results_md:
        write_section(args.results_md, f'methods.py {name}', md)


if __name__ == '__main__':
    main()
