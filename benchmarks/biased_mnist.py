"""Benchmark (not a test): OccamResNet-18 vs ResNet-18 on the small Biased
MNIST protocol over several seeds; mean +- std written to docs/results.md.

    python benchmarks/biased_mnist.py                      # seeds 0 1 2
    python benchmarks/biased_mnist.py --seeds 0 1 2 3 --p-bias 0.95 --epochs 10

Each seed trains both models of ``tools/demo.py`` (same data, same schedule,
same trunk; the training seed changes, the generated data stay those of
seed 0) and tests them on the unbiased test split. ``docs/results.md`` is
rewritten after every seed, so an interrupted run leaves its partial numbers
(marked as such).
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

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
                 ('expected compute (x full)', 'exit/expected_compute')]


def load_demo():
    spec = importlib.util.spec_from_file_location(
        'occam_tools_demo', osp.join(REPO, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine() -> str:
    import torch
    cpu = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return (f'{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, '
            f'{torch.get_num_threads()} torch threads, Python '
            f'{platform.python_version()}')


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


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
        f'- machine: {machine()}',
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
            for m in ('resnet', 'occam')
        ]
        lines.append(f'| {label} | {cells[0]} | {cells[1]} |')
    gains = [r['results']['occam']['bias/unbiased_acc'] -
             r['results']['resnet']['bias/unbiased_acc'] for r in runs]
    if gains:
        lines += ['', f'OccamResNet-18 - ResNet-18, unbiased accuracy: '
                  f'**{mean_std(gains)} points** (target of issue 3: >= +15).']
    lines += ['', '## Per seed', '',
              '| seed | ResNet-18 unbiased | OccamResNet-18 unbiased | gain |',
              '|---|---|---|---|']
    for r, g in zip(runs, gains):
        lines.append(
            f'| {r["seed"]} | {r["results"]["resnet"]["bias/unbiased_acc"]:.2f}'
            f' | {r["results"]["occam"]["bias/unbiased_acc"]:.2f} | {g:+.2f} |')
    return '\n'.join(lines) + '\n'


BEGIN, END = '<!-- biased_mnist.py begin -->', '<!-- biased_mnist.py end -->'


def write_section(path: str, text: str) -> None:
    """Replace only this benchmark's section of ``path`` (other benchmarks
    write their own sections into the same file)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    old = ''
    if osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            old = f.read()
    block = f'{BEGIN}\n{text}{END}\n'
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1].lstrip('\n')
    else:
        new = block + ('\n' + old if old else '')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(new)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--p-bias', type=float, default=None,
                   help='default: the small config\'s')
    p.add_argument('--epochs', type=int, default=None,
                   help='default: the small config\'s')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'bench'))
    p.add_argument('--out', default=osp.join(REPO, 'docs', 'results.md'))
    args = p.parse_args(argv)
    command = 'python benchmarks/biased_mnist.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    started = time.strftime('%Y-%m-%d %H:%M', time.gmtime())
    demo = load_demo()
    runs = []
    for seed in args.seeds:
        print(f'\n##### seed {seed} #####', flush=True)
        overrides = dict(p_bias=args.p_bias, epochs=args.epochs, seed=seed)
        cfg = demo.build_cfg('occam', args.work_dir, **overrides)
        results = demo.run_pair(osp.join(args.work_dir, f'seed{seed}'),
                                **overrides)
        runs.append(dict(seed=seed, results=results,
                         p_bias=cfg.train_dataloader.dataset.p_bias,
                         epochs=cfg.train_cfg.max_epochs))
        write_section(args.out, render(runs, args, command, started,
                                       done=len(runs) == len(args.seeds)))
        with open(osp.join(args.work_dir, 'runs.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(runs, f, indent=2)
        print(demo.format_table(results), flush=True)
    print(render(runs, args, command, started, done=True))


if __name__ == '__main__':
    sys.path.insert(0, REPO)
    main()
