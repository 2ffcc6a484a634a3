"""Speed benchmarks of OccamResNet-18. Not a test.

    python benchmarks/speed.py                      # prints a markdown section
    python benchmarks/speed.py --results-md docs/results.md   # and writes it

(a) Training step (forward + backward + optimizer step, ``model.train_step``)
    time and peak memory: OccamResNet-18 (``configs/_base_/models/
    occam_resnet18.py``: ResNet-18 trunk of width 58, 4 exits, all losses) vs
    the same trunk without exits (GAP + linear head, plain CE). Each model
    trains in its own subprocess, so the peak resident memory
    (``resource.getrusage().ru_maxrss``) is that model's alone; the growth
    over the RSS after building the model and the batch is the training
    memory. (``tracemalloc`` does not see torch's C++ allocations, so it is
    not used.) Target: OccamNet step time <= 1.3x the plain trunk.
(b) Inference images/s, ``inference_mode='dynamic'`` vs ``'compute_all'``
    at batch 1 and batch N, for controlled exit distributions: the exit
    threshold and the gate bias of exit 2 force 0 %, 50 % or 100 % of the
    samples to leave at exit 1 (the others at the last exit, 3). The
    FLOP-ideal speed-up is ``compute-all FLOPs / mean dynamic FLOPs per
    sample`` (both measured with mmengine's FlopAnalyzer, the ``flops``
    field of the predictions). Target: measured speed-up >= 0.8x ideal.
(c) GPU: only when a GPU is visible (``torch.cuda.is_available()``): the same
    inference on the GPU with AMP (fp16 autocast).

Timings are medians of repeated runs; ``--profile`` adds a torch.profiler
table of where the dynamic path spends its time.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import machine, write_section  # noqa: E402
from occam_plugin.models.utils.training_state import \
    reset_epoch_state  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OCCAM_CFG = osp.join(REPO, 'configs', '_base_', 'models', 'occam_resnet18.py')
NUM_CLASSES = 10


# ------------------------------------------------------------------ models
def build_model(kind: str):
    """``occam``: OccamResNet-18 from the project config; ``plain``: the same
    trunk (last stage only) with GAP + linear head."""
    from mmengine.config import Config

    import occam_plugin  # noqa: F401  (registers)
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(OCCAM_CFG).model
    cfg.head.num_classes = NUM_CLASSES
    preproc = dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                   std=[58.395, 57.12, 57.375], to_rgb=True)
    if kind == 'occam':
        cfg.data_preprocessor = preproc
        model = MODELS.build(cfg)
    elif kind == 'plain':
        backbone = dict(cfg.backbone, out_indices=(3, ))
        width = backbone['base_channels'] * 8
        model = MODELS.build(
            dict(type='ImageClassifier', backbone=backbone,
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                           in_channels=width,
                           loss=dict(type='CrossEntropyLoss')),
                 data_preprocessor=preproc))
    else:
        raise ValueError(f'build_model: kind={kind!r}; expected occam|plain')
    return model


def make_batch(n: int, size: int, seed: int = 0) -> dict:
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, 3, size, size), generator=g,
                         dtype=torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (n, ), generator=g)
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(int(y))
        for i, y in enumerate(labels)
    ]
    return dict(inputs=list(imgs), data_samples=samples)


def rss_mb() -> float:
    """Current resident memory of this process (Linux /proc), MiB."""
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


# ------------------------------------------------------------------ (a)
def train_worker(kind: str, size: int, batch: int, iters: int,
                 warmup: int) -> dict:
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    model = build_model(kind)
    if kind == 'occam':
        model.head.gate_loss.resize_memory(batch)
        reset_epoch_state(model, 0)
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3,
                                          weight_decay=5e-4))
    data = make_batch(batch, size)
    model.train()
    rss_before = rss_mb()
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        model.train_step(data, optim)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB
    return dict(kind=kind, step_s=statistics.median(times),
                step_s_all=times, rss_before_mb=rss_before, peak_rss_mb=peak,
                params=sum(p.numel() for p in model.parameters()))


def interleaved_step_times(args) -> dict:
    """Median train-step time of both models, steps alternated one by one
    in this process, so load from other jobs hits both alike."""
    from mmengine.optim import OptimWrapper
    models, optims = {}, {}
    for kind in ('plain', 'occam'):
        torch.manual_seed(0)
        models[kind] = build_model(kind)
        if kind == 'occam':
            models[kind].head.gate_loss.resize_memory(args.batch)
            reset_epoch_state(models[kind], 0)
        models[kind].train()
        optims[kind] = OptimWrapper(torch.optim.Adam(
            models[kind].parameters(), lr=1e-3, weight_decay=5e-4))
    data = make_batch(args.batch, args.img_size)
    times = {k: [] for k in models}
    for i in range(args.warmup + args.train_iters):
        for kind in models:
            t0 = time.perf_counter()
            models[kind].train_step(data, optims[kind])
            if i >= args.warmup:
                times[kind].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def run_train_benchmark(args) -> dict:
    out = {}
    for kind in ('plain', 'occam'):
        cmd = [sys.executable, osp.abspath(__file__), '--worker', kind,
               '--img-size', str(args.img_size), '--batch', str(args.batch),
               '--train-iters', str(args.train_iters), '--warmup',
               str(args.warmup)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO)
        lines = [ln for ln in proc.stdout.splitlines()
                 if ln.startswith('{')]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f'train worker {kind} failed:\n'
                               f'{proc.stderr[-3000:]}')
        out[kind] = json.loads(lines[-1])
        print(f'[a] {kind}: {out[kind]["step_s"]:.3f} s/step, peak RSS '
              f'{out[kind]["peak_rss_mb"]:.0f} MiB', flush=True)
    inter = interleaved_step_times(args)
    for kind in inter:
        out[kind]['step_s_interleaved'] = inter[kind]
    print(f'[a] interleaved: {inter}', flush=True)
    return out


# ------------------------------------------------------------------ (b)
class ExitControl:
    """Force the share of samples leaving at exit 1 (the rest: exit 3).

    Exit 2's gate is pinned shut through its output bias; for exit 1 the
    threshold is 0 (all leave) or between two exit-1 gates of the benchmark
    images (a share), and for none its gate is pinned shut as well (the
    threshold must lie in [0, 1], and a gate can saturate to exactly 1).
    """

    def __init__(self, model, inputs):
        self.head = model.head
        self.bias1 = self.head.gates[1][-1].bias
        self.bias2 = self.head.gates[2][-1].bias
        self.saved = (self.head.exit_threshold, self.bias1.detach().clone(),
                      self.bias2.detach().clone())
        model.inference_mode = 'compute_all'
        with torch.no_grad():
            res = model.predict(inputs)
        self.gates1 = torch.stack([r.exit_gates[1] for r in res])

    def set(self, share: float):
        with torch.no_grad():
            self.bias2.fill_(-1e4)  # gate 2 = 0: never leave at exit 2
            self.bias1.copy_(self.saved[1])
        if share == 0:
            with torch.no_grad():
                self.bias1.fill_(-1e4)  # gate 1 = 0 < any threshold > 0
            self.head.exit_threshold = 0.5
        elif share == 1:
            self.head.exit_threshold = 0.0
        else:
            g = self.gates1.sort().values
            j = int(round(share * len(g)))  # top `share` of gates leave
            self.head.exit_threshold = float((g[-j] + g[-j - 1]) / 2)

    def restore(self):
        self.head.exit_threshold = self.saved[0]
        with torch.no_grad():
            self.bias1.copy_(self.saved[1])
            self.bias2.copy_(self.saved[2])


def time_modes(model, inputs, batch, repeats, autocast=None,
               modes=('compute_all', 'dynamic')):
    """Median images/s of ``model.predict`` per inference mode over
    ``repeats`` passes over ``inputs`` in chunks of ``batch``. The modes are
    interleaved pass by pass, so load from other jobs on a shared machine
    hits both alike. Returns ``{mode: (images/s, predictions)}``."""
    chunks = list(torch.split(inputs, batch))
    sync = (torch.cuda.synchronize if inputs.is_cuda else (lambda: None))
    rates = {m: [] for m in modes}
    preds = {}

    def one_pass(mode):
        model.inference_mode = mode
        out = []
        for c in chunks:
            out += model.predict(c)
        return out

    with torch.no_grad():
        with (autocast() if autocast else _null()):
            for mode in modes:  # warm-up (FLOP profile, allocator)
                preds[mode] = one_pass(mode)
            for _ in range(repeats):
                for mode in modes:
                    sync()
                    t0 = time.perf_counter()
                    one_pass(mode)
                    sync()
                    rates[mode].append(
                        len(inputs) / (time.perf_counter() - t0))
    model.inference_mode = 'compute_all'
    return {m: (statistics.median(rates[m]), preds[m]) for m in modes}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def run_infer_benchmark(args, device='cpu', amp=False) -> list:
    torch.manual_seed(0)
    model = build_model('occam').to(device)
    model.eval()
    data = make_batch(args.batch, args.img_size, seed=1)
    inputs = model.data_preprocessor(data, False)['inputs'].to(device)
    ctrl = ExitControl(model, inputs)
    autocast = (lambda: torch.autocast('cuda', dtype=torch.float16)) \
        if amp else None
    rows = []
    try:
        for share in args.shares:
            ctrl.set(share)
            for batch in (1, args.batch):
                x = inputs[:args.b1_images] if batch == 1 else inputs
                res = time_modes(model, x, batch, args.repeats, autocast)
                full_ips, full = res['compute_all']
                dyn_ips, dyn = res['dynamic']
                exits = [d.exit_idx for d in dyn]
                assert exits == [f.exit_idx for f in full]
                assert all(torch.equal(d.pred_label, f.pred_label)
                           for d, f in zip(dyn, full))
                full_flops = statistics.mean(f.flops for f in full)
                dyn_flops = statistics.mean(d.flops for d in dyn)
                ideal = full_flops / dyn_flops
                real = dyn_ips / full_ips
                rows.append(dict(
                    device=device, amp=amp, share_exit1=share, batch=batch,
                    images=len(x), exit1=sum(e == 1 for e in exits) / len(x),
                    compute_all_ips=full_ips, dynamic_ips=dyn_ips,
                    speedup=real, ideal=ideal, of_ideal=real / ideal,
                    gflops_full=full_flops / 1e9, gflops_dyn=dyn_flops / 1e9))
                print(f'[b] {device} share={share:.2f} batch={batch}: '
                      f'compute-all {full_ips:.1f} img/s, dynamic '
                      f'{dyn_ips:.1f} img/s, speed-up {real:.2f} '
                      f'(ideal {ideal:.2f}, {real / ideal:.2f} of ideal)',
                      flush=True)
    finally:
        ctrl.restore()
    return rows


def run_profile(args) -> str:
    """Where the time goes: dynamic vs compute-all, batch 1, all exit at 1."""
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    model = build_model('occam')
    model.eval()
    data = make_batch(args.b1_images, args.img_size, seed=1)
    inputs = model.data_preprocessor(data, False)['inputs']
    ctrl = ExitControl(model, inputs)
    ctrl.set(1.0)
    tables = []
    try:
        for mode in ('compute_all', 'dynamic'):
            time_modes(model, inputs[:4], 1, 1, modes=(mode, ))  # warm-up
            model.inference_mode = mode
            with torch.no_grad(), profile(
                    activities=[ProfilerActivity.CPU]) as prof:
                for c in torch.split(inputs, 1):
                    model.predict(c)
            tables.append(f'{mode}, batch 1, {len(inputs)} images, all '
                          'leave at exit 1:\n' + prof.key_averages().table(
                              sort_by='self_cpu_time_total', row_limit=12,
                              max_name_column_width=40))
    finally:
        ctrl.restore()
    return '\n\n'.join(tables)


# ------------------------------------------------------------------ report
def markdown(args, train, infer, gpu_rows, prof, started, wall) -> str:
    lines = ['## Speed: training overhead and dynamic early exit '
             '(`benchmarks/speed.py`)', '']
    cmd = ' '.join(['python', 'benchmarks/speed.py'] + sys.argv[1:])
    lines += [
        f'- Command: `{cmd}`',
        f'- Date: {started} UTC, wall time {wall:.0f} s',
        f'- Machine: {machine()}, {torch.get_num_threads()} torch threads; '
        f'load average {os.getloadavg()[0]:.1f} when the report was written '
        '(other processes add noise: medians reported).',
        f'- Input {args.img_size} px, batch {args.batch} '
        f'(batch-1 rows: {args.b1_images} images one at a time), '
        f'{NUM_CLASSES} classes; OccamResNet-18 = '
        '`configs/_base_/models/occam_resnet18.py` (ResNet-18 trunk, width '
        '58, 4 exits).',
        '',
    ]
    if train:
        p, o = train['plain'], train['occam']
        ratio = o['step_s_interleaved'] / p['step_s_interleaved']
        ratio_sep = o['step_s'] / p['step_s']
        grow_p = p['peak_rss_mb'] - p['rss_before_mb']
        grow_o = o['peak_rss_mb'] - o['rss_before_mb']
        lines += [
            '### (a) Training step (forward + backward + Adam step)', '',
            '| model | params | step time, interleaved (s) | img/s | '
            'step time, own process (s) | peak RSS (MiB) | '
            'RSS growth in training (MiB) |',
            '|---|---|---|---|---|---|---|',
            f'| ResNet-18 trunk, no exits | {p["params"] / 1e6:.2f} M | '
            f'{p["step_s_interleaved"]:.3f} | '
            f'{args.batch / p["step_s_interleaved"]:.0f} | '
            f'{p["step_s"]:.3f} | {p["peak_rss_mb"]:.0f} | {grow_p:.0f} |',
            f'| OccamResNet-18 | {o["params"] / 1e6:.2f} M | '
            f'{o["step_s_interleaved"]:.3f} | '
            f'{args.batch / o["step_s_interleaved"]:.0f} | '
            f'{o["step_s"]:.3f} | {o["peak_rss_mb"]:.0f} | {grow_o:.0f} |',
            '',
            f'Step time ratio OccamNet / trunk (interleaved steps, the fair '
            f'comparison on a shared CPU): **{ratio:.2f}x** (target <= '
            f'1.3x: {"met" if ratio <= 1.3 else "NOT met"}); measured in '
            f'separate processes at different times: {ratio_sep:.2f}x. '
            'Memory ratio '
            f'(training growth): {grow_o / max(grow_p, 1e-9):.2f}x. '
            'Memory is the peak resident set of a process that trains only '
            'that model (ru_maxrss), a coarse CPU proxy for activation '
            'memory: it includes the allocator\'s caching and the Python '
            'runtime.', ''
        ]
    if infer:
        lines += [
            '### (b) Inference: dynamic early exit vs compute-all (CPU)', '',
            'Exit distribution forced through the exit threshold and exit '
            "2's gate bias: `share` of the samples leave at exit 1, the rest "
            'at exit 3. Ideal = compute-all FLOPs / dynamic FLOPs per sample '
            '(FlopAnalyzer). Predictions and exits of both modes were checked '
            'equal in every row.', '',
            '| share at exit 1 | batch | compute-all img/s | dynamic img/s | '
            'speed-up | FLOP-ideal | of ideal | GFLOPs/img (all → dyn) |',
            '|---|---|---|---|---|---|---|---|',
        ]
        for r in infer:
            lines.append(
                f'| {r["exit1"]:.0%} | {r["batch"]} | '
                f'{r["compute_all_ips"]:.1f} | {r["dynamic_ips"]:.1f} | '
                f'{r["speedup"]:.2f}x | {r["ideal"]:.2f}x | '
                f'{r["of_ideal"]:.2f} | {r["gflops_full"]:.3f} → '
                f'{r["gflops_dyn"]:.3f} |')
        early = [r for r in infer if r['exit1'] > 0]
        met = [r for r in early if r['of_ideal'] >= 0.8]
        lines += ['', f'Target >= 0.8 of the FLOP-ideal speed-up (rows where '
                  f'samples exit early): met in {len(met)} of {len(early)} '
                  'rows.', '']
    lines += ['### (c) GPU', '']
    if gpu_rows:
        lines += ['| share at exit 1 | batch | compute-all img/s | dynamic '
                  'img/s | speed-up | FLOP-ideal |',
                  '|---|---|---|---|---|---|']
        for r in gpu_rows:
            lines.append(f'| {r["exit1"]:.0%} | {r["batch"]} | '
                         f'{r["compute_all_ips"]:.1f} | {r["dynamic_ips"]:.1f}'
                         f' | {r["speedup"]:.2f}x | {r["ideal"]:.2f}x |')
    else:
        lines.append('No GPU was available to this run (none lent to this '
                     'task), so (c) was not measured; '
                     '`python benchmarks/speed.py` runs it with AMP where '
                     '`torch.cuda.is_available()`.')
    lines.append('')
    if prof:
        lines += ['### Where the time goes (torch.profiler, CPU)', '',
                  '```', prof, '```', '']
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--train-iters', type=int, default=8)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed passes per inference setting')
    parser.add_argument('--b1-images', type=int, default=32,
                        help='images timed one by one for batch 1')
    parser.add_argument('--shares', type=float, nargs='+',
                        default=[0.0, 0.5, 1.0],
                        help='shares of samples forced to leave at exit 1')
    parser.add_argument('--skip', nargs='*', default=[],
                        choices=['train', 'infer', 'gpu'])
    parser.add_argument('--profile', action='store_true')
    parser.add_argument('--results-md', help='write the section into this '
                        'markdown file (e.g. docs/results.md)')
    parser.add_argument('--json', help='also dump raw numbers here')
    parser.add_argument('--worker', choices=['occam', 'plain'],
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        res = train_worker(args.worker, args.img_size, args.batch,
                           args.train_iters, args.warmup)
        print(json.dumps(res))
        return res
    import warnings
    warnings.filterwarnings('ignore')
    started = datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M')
    t0 = time.time()
    train = run_train_benchmark(args) if 'train' not in args.skip else None
    infer = run_infer_benchmark(args) if 'infer' not in args.skip else None
    gpu_rows = None
    if 'gpu' not in args.skip and torch.cuda.is_available():
        gpu_rows = run_infer_benchmark(args, device='cuda', amp=True)
    prof = run_profile(args) if args.profile else None
    section = markdown(args, train, infer, gpu_rows, prof, started,
                       time.time() - t0)
    print(section)
    if args.results_md:
        write_section(args.results_md, 'speed.py', section)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(train=train, infer=infer, gpu=gpu_rows), f,
                      indent=2)
    return dict(train=train, infer=infer, gpu=gpu_rows)


if __name__ == '__main__':
    main()
