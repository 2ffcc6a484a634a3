"""Benchmark (not a test): OccamResNet-18 vs ResNet-18 on the small Biased
MNIST protocol over several seeds; mean +- std written to docs/results.md.

    python benchmarks/biased_mnist.py                      # seeds 0 1 2
    python benchmarks/biased_mnist.py --seeds 0 1 2 3 --p-bias 0.9 --jobs 2

Each (seed, model) is one ``tools/demo.py --models MODEL --seed SEED`` run
(same data, same schedule, same trunk; the training seed changes, the
generated data stay those of seed 0) tested on the unbiased test split;
``--jobs`` runs that many at once, each with its share of the CPU threads.
``docs/results.md`` is rewritten after every finished seed, so an
interrupted run leaves its partial numbers (marked as such).
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import (PYTHON, machine, mean_std, run_commands,  # noqa: E402
                    write_section)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = ('resnet', 'occam')

METRICS = [
    ('unbiased acc.', 'bias/unbiased_acc'),
    ('overall acc.', 'bias/acc'),
    ('worst-group acc.', 'bias/worst_group_acc'),
    ('aligned acc.', 'bias/aligned_acc'),
    ('conflicting acc.', 'bias/conflicting_acc'),
    ('train time (s)', 'train_seconds'),
]
OCCAM_METRICS = [('exit share e1 (%)', 'exit/share_e1'),
                 ('exit share e2 (%)', 'exit/share_e2'),
                 ('exit share e3 (%)', 'exit/share_e3'),
                 ('exit accuracy e1', 'exit/acc_e1'),
                 ('exit accuracy e2', 'exit/acc_e2'),
                 ('exit accuracy e3', 'exit/acc_e3'),
                 ('expected compute (x full)', 'exit/expected_compute')]


def render(runs: list, args, command: str, started: str, done: bool) -> str:
    """The markdown of docs/results.md for the seeds finished so far."""
    seeds = [r['seed'] for r in runs]
    lines = [
        '## Biased MNIST, small CPU protocol (issue 3, '
        '`benchmarks/biased_mnist.py`)', '',
        '_Written by `benchmarks/biased_mnist.py`; numbers measured, not '
        'copied._' + ('' if done else
                      ' **Partial: the run was still going or was stopped; '
                      f'{len(runs)} of {len(args.seeds)} seeds done.**'), '',
        f'- command: `{command}`',
        f'- machine: {machine()}, {args.jobs} run(s) at a time',
        f'- date: {started} (UTC start), last update '
        f'{time.strftime("%Y-%m-%d %H:%M", time.gmtime())} UTC',
        f'- protocol: configs/occam_resnet18_biased_mnist_small.py vs '
        f'configs/resnet18_biased_mnist_small.py (same data, schedule and '
        f'trunk), p_bias {runs[0]["p_bias"] if runs else args.p_bias}, '
        f'{runs[0]["epochs"] if runs else args.epochs} epochs, training seeds '
        f'{seeds}; metrics on the unbiased test split (%; unbiased acc. = '
        'mean over the 100 class x digit-colour groups)', '',
        '| metric | ResNet-18 | OccamResNet-18 |', '|---|---|---|'
    ]
    for label, key in METRICS + OCCAM_METRICS:
        cells = [
            mean_std([r['results'].get(m, {}).get(key) for r in runs])
            for m in MODELS
        ]
        lines.append(f'| {label} | {cells[0]} | {cells[1]} |')
    gains = [r['results']['occam']['bias/unbiased_acc'] -
             r['results']['resnet']['bias/unbiased_acc'] for r in runs]
    if gains:
        lines += ['', f'OccamResNet-18 - ResNet-18, unbiased accuracy: '
                  f'**{mean_std(gains)} points** (target of issue 3: >= +15).']
    lines += ['', '### Per seed', '',
              '| seed | ResNet-18 unbiased | OccamResNet-18 unbiased | gain |',
              '|---|---|---|---|']
    for r, g in zip(runs, gains):
        lines.append(
            f'| {r["seed"]} | {r["results"]["resnet"]["bias/unbiased_acc"]:.2f}'
            f' | {r["results"]["occam"]["bias/unbiased_acc"]:.2f} | {g:+.2f} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--p-bias', type=float, default=None,
                   help='default: the small config\'s')
    p.add_argument('--epochs', type=int, default=None,
                   help='default: the small config\'s')
    p.add_argument('--jobs', type=int, default=1,
                   help='runs at a time (each gets cpu_count / jobs threads)')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'bench'))
    p.add_argument('--out', default=osp.join(REPO, 'docs', 'results.md'))
    args = p.parse_args(argv)
    command = 'python benchmarks/biased_mnist.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    started = time.strftime('%Y-%m-%d %H:%M', time.gmtime())
    keys = [(seed, m) for seed in args.seeds for m in MODELS]
    cmds = []
    for seed, m in keys:
        cmd = [PYTHON, osp.join(REPO, 'tools', 'demo.py'), '--models', m,
               '--seed', str(seed), '--work-dir',
               osp.join(args.work_dir, f'seed{seed}', m)]
        if args.p_bias is not None:
            cmd += ['--p-bias', str(args.p_bias)]
        if args.epochs is not None:
            cmd += ['--epochs', str(args.epochs)]
        cmds.append(cmd)
    # the data are generated once, before the parallel runs share them
    prep = [PYTHON, osp.join(REPO, 'tools', 'demo.py'), '--prepare-only']
    if args.p_bias is not None:
        prep += ['--p-bias', str(args.p_bias)]
    _, rc, _, tail = next(run_commands([prep]))
    if rc != 0:
        raise RuntimeError(f'generating the data failed (exit {rc}):\n{tail}')
    done, runs = {}, []
    for i, rc, seconds, tail in run_commands(
            cmds, args.jobs, osp.join(args.work_dir, 'logs')):
        seed, m = keys[i]
        if rc != 0:
            raise RuntimeError(f'seed {seed}, {m} failed (exit {rc}):\n{tail}')
        with open(osp.join(args.work_dir, f'seed{seed}', m, 'summary.json'),
                  encoding='utf-8') as f:
            summary = json.load(f)
        done.setdefault(seed, {})[m] = summary['results'][m]
        print(f'seed {seed} {m}: unbiased acc '
              f'{summary["results"][m].get("bias/unbiased_acc"):.2f} '
              f'({seconds:.0f} s)', flush=True)
        if len(done[seed]) == len(MODELS):
            runs.append(dict(seed=seed, results=done[seed],
                             p_bias=summary['p_bias'],
                             epochs=summary['epochs']))
            write_section(args.out, 'biased_mnist.py',
                          render(runs, args, command, started,
                                 done=len(runs) == len(args.seeds)))
            with open(osp.join(args.work_dir, 'runs.json'), 'w',
                      encoding='utf-8') as f:
                json.dump(runs, f, indent=2)
    print(render(runs, args, command, started, done=True))


if __name__ == '__main__':
    main()
