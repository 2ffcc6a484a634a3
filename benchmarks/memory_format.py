"""Training-step time of the CPU protocol's models with the image batch in
channels-last vs contiguous (NCHW) memory format. Not a test.

    python benchmarks/memory_format.py
    python benchmarks/memory_format.py --results-md docs/results.md

The models of `make demo` (configs/resnet/resnet18-w16_1xb64_10e_biased-
mnist-small.py and configs/occamnets/occamnets_resnet18-w16_1xb64_10e_biased-
mnist-small.py: ResNet-18 trunks of width 16), batch 64 at 80 px, one torch
thread (as each of the demo's two runs), through ``model.train_step`` (the
data preprocessor, forward, backward and the Adam step): once with
mmpretrain's ``ClsDataPreprocessor`` and once with our
``ChannelsLastDataPreprocessor``. Steps of the two settings alternate one by
one, so load from elsewhere hits both alike; the medians are reported.
"""
import argparse
import datetime
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import machine, write_section  # noqa: E402
from speed import make_batch  # noqa: E402
from occam_plugin.models.utils.training_state import \
    reset_epoch_state  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'ResNet-18 (w16)': 'configs/resnet/'
    'resnet18-w16_1xb64_10e_biased-mnist-small.py',
    'OccamResNet-18 (w16)': 'configs/occamnets/'
    'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py',
}
FORMATS = ('ClsDataPreprocessor', 'ChannelsLastDataPreprocessor')


def build(cfg_file: str, preprocessor: str, batch: int):
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import occam_plugin  # noqa: F401  (registers)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, cfg_file))
    model_cfg = cfg.model
    # the dataset config's preprocessor (mean/std), as the Runner merges it
    dp = dict(cfg.get('data_preprocessor', {}))
    dp.update(model_cfg.get('data_preprocessor') or {})
    dp['type'] = preprocessor
    model_cfg.data_preprocessor = dp
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    if hasattr(model.head, 'gate_loss'):
        model.head.gate_loss.resize_memory(batch)
        reset_epoch_state(model, 0)
    model.train()
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3,
                                          weight_decay=5e-4))
    return model, optim


def step_times(cfg_file, size, batch, iters, warmup):
    built = {f: build(cfg_file, f, batch) for f in FORMATS}
    data = make_batch(batch, size)
    times = {f: [] for f in FORMATS}
    for i in range(warmup + iters):
        for f in FORMATS:
            model, optim = built[f]
            t0 = time.perf_counter()
            model.train_step(data, optim)
            if i >= warmup:
                times[f].append(time.perf_counter() - t0)
    return {f: statistics.median(t) for f, t in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--img-size', type=int, default=80)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--results-md', default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = datetime.datetime.now(datetime.timezone.utc)
    lines = ['| model | NCHW (ClsDataPreprocessor) s/step | channels-last '
             '(ChannelsLastDataPreprocessor) s/step | change |',
             '|---|---|---|---|']
    for name, cfg_file in CONFIGS.items():
        t = step_times(cfg_file, args.img_size, args.batch, args.iters,
                       args.warmup)
        a, b = t[FORMATS[0]], t[FORMATS[1]]
        lines.append(
            f'| {name} | {a:.4f} | {b:.4f} | {100 * (b / a - 1):+.0f} % |')
        print(lines[-1], flush=True)
    md = ('## Memory format of the CPU protocol\'s training step '
          '(`benchmarks/memory_format.py`)\n\n'
          f'- command: `python benchmarks/memory_format.py '
          f'{" ".join(argv if argv is not None else sys.argv[1:])}`\n'
          f'- machine: {machine()}, {args.threads} torch thread(s)\n'
          f'- date: {start:%Y-%m-%d %H:%M} UTC\n'
          f'- batch {args.batch} at {args.img_size} px, median of '
          f'{args.iters} `model.train_step` calls after {args.warmup} '
          'warm-up steps, the two settings alternated step by step\n\n' +
          '\n'.join(lines) + '\n')
    print(md)
    if args.results_md:
        write_section(args.results_md, 'memory_format.py', md)


if __name__ == '__main__':
    main()
