"""What the benchmark scripts share: the machine line of a report, the
section of ``docs/results.md`` each script owns, and running training jobs
in parallel processes."""
import os
import os.path as osp
import platform
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def machine() -> str:
    """CPU model, core count, torch and Python versions, for a report."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = (f', GPU {torch.cuda.get_device_name(0)}'
           if torch.cuda.is_available() else ', no GPU')
    return (f'{os.cpu_count()} logical CPUs ({cpu}){gpu}, torch '
            f'{torch.__version__}, Python {platform.python_version()}')


def mean_std(values, digits: int = 2) -> str:
    """``mean ± std`` (sample std) of the non-None values, '-' if none."""
    values = [v for v in values if v is not None]
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    return (f'{statistics.mean(values):.{digits}f} ± '
            f'{statistics.stdev(values):.{digits}f}')


def write_section(path: str, name: str, text: str) -> None:
    """Replace the section ``name`` of the markdown file ``path`` (between
    ``<!-- name begin -->`` and ``<!-- name end -->``), or append it; the
    other scripts' sections are kept as they are (the file is re-read right
    before writing)."""
    begin, end = f'<!-- {name} begin -->', f'<!-- {name} end -->'
    block = f'{begin}\n{text.rstrip()}\n{end}\n'
    old = ''
    if osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            old = f.read()
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1].lstrip('\n')
    else:
        new = old.rstrip('\n') + ('\n\n' if old else '') + block
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(new)


def warn_gpu_sharing(jobs: int) -> None:
    """Several trainings on one GPU without CUDA MPS time-slice it: on an
    H200, 14 at once ran each iteration 16 x slower than one alone, while 4
    under MPS ran at 0.7 x each (docs/results.md, 2026-11-25)."""
    if jobs < 2 or shutil.which('nvidia-smi') is None:
        return
    pipe = os.environ.get('CUDA_MPS_PIPE_DIRECTORY', '/tmp/nvidia-mps')
    if not osp.exists(osp.join(pipe, 'control')):
        print(f'warning: {jobs} trainings at once share the GPU without '
              'CUDA MPS, which time-slices it (measured 16 x slower per '
              'iteration with 14 runs on an H200): start '
              '`nvidia-cuda-mps-control -d` first (4-6 runs at a time), or '
              'use --jobs 1.', file=sys.stderr, flush=True)


def run_commands(commands, jobs: int = 1, log_dir: str = None,
                 threads: int = None, deadline: float = None):
    """Run each command (an argv list) as its own process, ``jobs`` at a
    time, every process limited to ``threads`` (default ``cpu_count //
    jobs``) torch threads so parallel runs do not fight over the cores.
    Yields ``(index, returncode, seconds, output_tail)`` in the order given;
    the full output goes to ``log_dir/<index>.log`` when ``log_dir`` is
    given. With ``deadline`` (a ``time.time()`` value, for a lease of fixed
    length) a command not started by then is skipped (returncode None) and
    one still running then is killed (returncode 'deadline'), so the
    finished ones are still reported."""
    jobs = max(1, jobs)
    warn_gpu_sharing(jobs)
    env = dict(os.environ)
    threads = str(threads or max(1, (os.cpu_count() or 1) // jobs))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)

    def one(i):
        t0 = time.time()
        if deadline is not None and t0 >= deadline:
            return i, None, 0.0, 'not started: deadline passed'
        try:
            proc = subprocess.run(
                commands[i], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, env=env,
                timeout=None if deadline is None else deadline - t0)
            rc, out = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as e:
            rc = 'deadline'
            out = e.stdout if isinstance(e.stdout, str) else (
                e.stdout or b'').decode(errors='replace')
            out += '\nkilled: deadline reached'
        if log_dir:
            with open(osp.join(log_dir, f'{i}.log'), 'w') as f:
                f.write(out)
        return i, rc, time.time() - t0, out[-3000:]

    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(one, i) for i in range(len(commands))]
        for fut in futures:
            yield fut.result()


PYTHON = sys.executable
