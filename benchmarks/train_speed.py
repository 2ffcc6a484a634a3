"""Training throughput of the CPU protocols beside the machine's limit.
Not a test.

    python benchmarks/train_speed.py                     # prints the table
    python benchmarks/train_speed.py --results-md docs/results.md
    python benchmarks/train_speed.py --protocol demo     # make demo's

For each model of the protocol (``bar``: the BAR CPU protocol,
``configs/{resnet,occamnets}/*_bar-small.py``, width 16, 112 px crops;
``demo``: ``make demo``'s ``*_biased-mnist-small.py``, width 16, 80 px;
both batch 64) and each option, one subprocess builds the
model from the shipped config and times ``model.train_step`` (data
preprocessor, forward, every loss, backward, Adam step: what the Runner
runs per iteration) on a batch of 64 images:

- ``fp32 NCHW``: contiguous batches (mmpretrain's ClsDataPreprocessor);
- ``fp32 channels-last``: the shipped configs' ChannelsLastDataPreprocessor;
- ``+ torch.compile``: the backbone compiled by inductor (the exits, gates
  and losses stay eager);
- ``+ bf16 autocast``: CPUAmpOptimWrapper (``tools/train.py --amp`` on a
  CPU with native bf16); on a CPU without avx512_bf16/amx_bf16 it is
  emulated and only shown for the record;
- ``bf16 autocast + torch.compile``: both (``compile-bf16``).

The limit: the FLOPs of a training step per image (mmengine's
FlopAnalyzer on one image, one multiply-add = 2 FLOPs here, times 3 for
forward + backward) times images/s, over the fp32 (and bf16) matmul rate
measured in the same process with the same threads (a 2048 x 2048 matmul).
``runs x threads`` compares one run on every core with runs in parallel (the
machine's images/s, summed). ``loader`` times the training pipeline alone
(decoded-image cache warm, RandomResizedCrop, flip, packing) on the real
BAR images when ``data/BAR`` is there.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import PYTHON, machine, write_section  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PROTOCOLS = dict(
    bar=dict(
        resnet='configs/resnet/resnet18-w16_1xb64_60e_bar-small.py',
        occam='configs/occamnets/'
        'occamnets_resnet18-w16_1xb64_60e_bar-small.py'),
    demo=dict(
        resnet='configs/resnet/resnet18-w16_1xb64_10e_biased-mnist-small.py',
        occam='configs/occamnets/'
        'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py'))
TITLES = dict(bar='the BAR CPU protocol', demo="make demo's protocol")
NAMES = dict(resnet='ResNet-18', occam='OccamResNet-18')
OPTIONS = {
    'nchw': 'fp32 NCHW',
    'cl': 'fp32 channels-last (shipped)',
    'compile': 'fp32 channels-last + torch.compile',
    'bf16': 'bf16 autocast, channels-last',
    'compile-bf16': 'bf16 autocast, channels-last + torch.compile',
}


def matmul_gflops(dtype, n=2048, repeats=5):
    import torch
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def train_size(cfg) -> int:
    """The side of the training images: the crop of RandomResizedCrop
    (BAR), else the stored side of the generated images (Biased MNIST)."""
    for t in cfg.train_pipeline:
        if t['type'] == 'RandomResizedCrop':
            return t['scale']
    return cfg.train_dataloader.dataset.generate.image_size


def build(protocol, model_kind, option, batch):
    """The model, its optim wrapper and one batch as the Runner feeds it."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    import occam_plugin  # noqa: F401  (registers)
    from occam_plugin.models.utils.training_state import (
        prepare_from_dataset, reset_epoch_state)
    cfg = Config.fromfile(osp.join(REPO, PROTOCOLS[protocol][model_kind]))
    if option != 'nchw':  # what the Runner merges into the model
        cfg.model.data_preprocessor = cfg.data_preprocessor
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        wrapper_cfg = dict(cfg.optim_wrapper)
        if 'bf16' in option:
            wrapper_cfg['type'] = 'CPUAmpOptimWrapper'
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    # the state the Runner's TrainingStateHook sizes to the training set
    # (the gate memory: one row per sample) and restarts every epoch
    prepare_from_dataset(model, dict(
        num_samples=batch, gt_label=np.arange(batch) % 6, group_idx=None,
        num_groups=None, dataset_name='train_speed.py'))
    reset_epoch_state(model, 0)
    model.train()
    size = train_size(cfg)
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                            generator=gen) for _ in range(batch)]
    samples = []
    for i in range(batch):
        s = DataSample().set_gt_label(i % 6)
        s.set_metainfo(dict(sample_idx=i))
        samples.append(s)
    return model, wrapper, dict(inputs=inputs, data_samples=samples), size


def train_flops_per_image(model, size):
    """3 x the forward FLOPs of one image (tensor mode: trunk, exits)."""
    import torch

    from occam_plugin.models.classifiers.dynamic_exit import measure_flops

    class Tensor(torch.nn.Module):

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x, mode='tensor')

    model.eval()
    macs = measure_flops(Tensor(model), torch.zeros(1, 3, size, size))
    model.train()
    return 3 * 2 * macs


def worker(args):
    import torch
    torch.set_num_threads(args.threads)
    model, wrapper, data, size = build(args.protocol, args.model,
                                       args.option, args.batch)
    flops = train_flops_per_image(model, size)
    if 'compile' in args.option:  # after FlopAnalyzer, which traces
        model.backbone = torch.compile(model.backbone)
    warmup, iters = args.warmup, args.iters
    if 'compile' in args.option:
        warmup += 2  # inductor compiles the forward and the backward first
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        model.train_step(data, wrapper)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    out = dict(model=args.model, option=args.option, threads=args.threads,
               step_s=statistics.median(times), batch=args.batch, size=size,
               train_flops=flops,
               peak_fp32=matmul_gflops(torch.float32))
    if 'bf16' in args.option:
        out['peak_bf16'] = matmul_gflops(torch.bfloat16, n=1024, repeats=2)
    print('RESULT ' + json.dumps(out), flush=True)


def loader_images_per_s(data_root, passes=2):
    """The training pipeline alone, decoded-image cache warm."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS

    import occam_plugin  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, PROTOCOLS['bar']['resnet']))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = data_root
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = DATASETS.build(ds_cfg)
    for i in range(len(ds)):  # fills the cache (the first epoch's decode)
        ds[i]
    t = time.perf_counter()
    for _ in range(passes):
        for i in range(len(ds)):
            ds[i]
    return passes * len(ds) / (time.perf_counter() - t)


def spawn(model, option, threads, args):
    cmd = [PYTHON, osp.abspath(__file__), '--protocol', args.protocol,
           '--worker', model, option,
           '--threads', str(threads), '--batch', str(args.batch),
           '--iters', str(args.iters), '--warmup', str(args.warmup)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def collect(proc):
    out, _ = proc.communicate()
    for line in out.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT '):])
    raise RuntimeError(f'worker failed:\n{out[-3000:]}')


def render(rows, parallel, loader, bf16_flags, command, cores, protocol):
    base = {(r['model'], r['threads']): r['batch'] / r['step_s']
            for r in rows if r['option'] == 'cl'}
    lines = [
        f'## Training throughput of {TITLES[protocol]} (`benchmarks/'
        'train_speed.py`)', '',
        f'- Command: `{command}`',
        f'- Machine: {machine()}; {datetime.date.today().isoformat()}. '
        f'Native bf16: {", ".join(sorted(bf16_flags)) or "none"} '
        '(avx512_bf16 / amx_bf16 in /proc/cpuinfo).',
        f'- images/s of `model.train_step` on one batch of 64 at '
        f'{rows[0]["size"]} px '
        '(median of the timed steps); FLOPs of a training step = 3 x the '
        'forward\'s (mmengine FlopAnalyzer, 2 FLOPs a multiply-add); the '
        'peak is a 2048 x 2048 fp32 matmul in the same process and threads.',
        '',
        '| model | option | threads | images/s | vs shipped | GFLOP/s | '
        '% of fp32 matmul peak |',
        '|---|---|---|---|---|---|---|']
    for r in rows:
        ips = r['batch'] / r['step_s']
        gflops = ips * r['train_flops'] / 1e9
        ratio = ips / base[(r['model'], r['threads'])] \
            if (r['model'], r['threads']) in base else float('nan')
        label = OPTIONS[r['option']]
        if 'bf16' in r['option']:
            label += (f' (bf16 matmul {r["peak_bf16"]:.1f} GFLOP/s'
                      + ('' if bf16_flags else ', emulated') + ')')
        lines.append(
            f'| {NAMES[r["model"]]} | {label} | {r["threads"]} | {ips:.1f} | '
            f'{ratio:.2f}x | {gflops:.1f} | '
            f'{100 * gflops / r["peak_fp32"]:.0f} % |')
    if parallel:
        lines += ['', f'Runs x threads on the {cores} cores (shipped option, '
                  'images/s of the machine, summed over the runs):', '',
                  '| model | 1 run x %d threads | %d runs x 1 thread |'
                  % (cores, cores), '|---|---|---|']
        for m, (one, many) in parallel.items():
            lines.append(f'| {NAMES[m]} | {one:.1f} | {many:.1f} |')
    if loader is not None:
        lines += ['', f'Training pipeline alone (one process, cache warm, '
                  f'real BAR images): **{loader:.0f} images/s**.']
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--protocol', choices=list(PROTOCOLS), default='bar')
    p.add_argument('--models', nargs='+', default=list(NAMES),
                   choices=list(NAMES))
    p.add_argument('--options', nargs='+', default=list(OPTIONS),
                   choices=list(OPTIONS))
    p.add_argument('--threads', nargs='+', type=int, default=[1])
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--no-parallel', action='store_true',
                   help='skip the runs x threads comparison')
    p.add_argument('--data-root', default=osp.join(REPO, 'data', 'BAR'))
    p.add_argument('--results-md', default=None)
    p.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.model, args.option = args.worker
        args.threads = args.threads[0]
        return worker(args)
    from occam_plugin.engine.optimizers import cpu_bf16_flags
    bf16_flags = cpu_bf16_flags() or frozenset()
    command = 'python benchmarks/train_speed.py ' + ' '.join(
        argv if argv is not None else sys.argv[1:])
    rows = []
    for m in args.models:
        for t in args.threads:
            for o in args.options:
                if 'bf16' in o and not bf16_flags:
                    # emulated: a step takes seconds; time just one
                    proc = spawn(m, o, t, argparse.Namespace(
                        protocol=args.protocol, batch=args.batch, iters=1,
                        warmup=1))
                else:
                    proc = spawn(m, o, t, args)
                rows.append(collect(proc))
                r = rows[-1]
                print(f'{m} {o} {t} threads: '
                      f'{r["batch"] / r["step_s"]:.1f} images/s', flush=True)
    cores = os.cpu_count() or 1
    parallel = {}
    if not args.no_parallel and cores > 1:
        for m in args.models:
            one = collect(spawn(m, 'cl', cores, args))
            procs = [spawn(m, 'cl', 1, args) for _ in range(cores)]
            many = [collect(pr) for pr in procs]
            parallel[m] = (one['batch'] / one['step_s'],
                           sum(r['batch'] / r['step_s'] for r in many))
    loader = loader_images_per_s(args.data_root) if (
        args.protocol == 'bar' and osp.isdir(args.data_root)) else None
    text = render(rows, parallel, loader, bf16_flags, command, cores,
                  args.protocol)
    print(text)
    if args.results_md:
        # the BAR section keeps its name of before
        name = 'train_speed.py' + (
            '' if args.protocol == 'bar' else f' --protocol {args.protocol}')
        write_section(args.results_md, name, text)


if __name__ == '__main__':
    main()
