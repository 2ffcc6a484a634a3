"""Runs of ``tools/`` as processes, and the results files they leave.

What ``tools/demo.py`` and ``benchmarks/`` share: :func:`run_commands`
starts commands (``tools/train.py``, ``tools/test.py``, ...) as processes,
several at a time, each with its share of the CPU threads; the readers find
what a finished run wrote into its work dir: the metrics files that
``MetricsFileHook`` writes into a run's log folder (:func:`read_metrics`)
and the JSON-lines scalars of mmengine's ``LoggerHook``
(:func:`read_records`).
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, List, Optional, Sequence

from ..fileio import open_for_writing

__all__ = [
    'newest', 'read_metrics', 'read_records', 'warn_gpu_sharing',
    'run_commands'
]

#: the files ``BiasMetric`` and ``ExitMetric`` write into a run's log folder
METRICS_FILES = ('bias_metrics.json', 'exit_metrics.json')


def newest(pattern: str) -> Optional[str]:
    """The most recently modified file matching the glob ``pattern``, or
    None when none does."""
    found = sorted(glob.glob(pattern), key=osp.getmtime)
    return found[-1] if found else None


def read_metrics(log_dir: str, names: Sequence[str] = METRICS_FILES) -> dict:
    """The ``metrics`` of the metrics files ``names`` in a run's log folder,
    merged into one dict (a file that is not there adds nothing)."""
    out = {}
    for name in names:
        path = osp.join(log_dir, name)
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                out.update(json.load(f)['metrics'])
    return out


def read_records(path: str, key: str) -> List[dict]:
    """The records (one JSON object a line, as mmengine's ``scalars.json``
    and ``<timestamp>.json``) of the file ``path`` that hold ``key``, in
    file order."""
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            rec = json.loads(line)
            if key in rec:
                out.append(rec)
    return out


def warn_gpu_sharing(jobs: int) -> None:
    """Warn that several trainings on one GPU without CUDA MPS time-slice
    it, each far slower than alone (measured: docs/results.md, "Costs the
    code and its messages cite")."""
    if jobs < 2 or shutil.which('nvidia-smi') is None:
        return
    pipe = os.environ.get('CUDA_MPS_PIPE_DIRECTORY', '/tmp/nvidia-mps')
    if not osp.exists(osp.join(pipe, 'control')):
        print(f'warning: {jobs} trainings at once share the GPU without '
              'CUDA MPS, which time-slices it (each run is then far '
              'slower than alone): start '
              '`nvidia-cuda-mps-control -d` first (4-6 runs at a time), or '
              'use --jobs 1.', file=sys.stderr, flush=True)


def _tail(path: str, chars: int = 3000) -> str:
    with open(path, encoding='utf-8', errors='replace') as f:
        return f.read()[-chars:]


def run_commands(commands, jobs: int = 1, log_dir: Optional[str] = None,
                 threads: Optional[int] = None,
                 deadline: Optional[float] = None,
                 logs: Optional[Sequence[str]] = None,
                 env: Optional[dict] = None, cwd: Optional[str] = None,
                 poll: Optional[Callable[[], None]] = None):
    """Run each command (an argv list) as its own process, ``jobs`` at a
    time, every process limited to ``threads`` (default ``cpu_count //
    jobs``) torch threads so parallel runs do not fight over the cores.

    Yields ``(index, returncode, seconds, output_tail)`` in the order given
    (``output_tail``: the last 3,000 characters of the output).

    Args:
        commands (list[list[str]]): the argv of each process.
        jobs (int): processes at a time.
        log_dir (str, optional): each command's full output goes to
            ``log_dir/<index>.log`` as it runs.
        threads (int, optional): ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``
            of every process (default ``cpu_count // jobs``, at least 1).
        deadline (float, optional): a ``time.time()`` value, for a lease of
            fixed length: a command not started by then is skipped
            (returncode None), one still running then is killed
            (returncode ``'deadline'``), so the finished ones are still
            reported.
        logs (list[str], optional): the log file of each command instead
            of ``log_dir/<index>.log``.
        env (dict, optional): more environment variables for every
            process.
        cwd (str, optional): the processes' working directory.
        poll (callable, optional): called about once a second while the
            commands run, and once after the last has ended (e.g. to pass
            on lines of the logs).
    """
    jobs = max(1, jobs)
    warn_gpu_sharing(jobs)
    full_env = dict(os.environ)
    threads = str(threads or max(1, (os.cpu_count() or 1) // jobs))
    full_env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    full_env.update(env or {})
    if logs is None and log_dir:
        os.makedirs(log_dir, exist_ok=True)
        logs = [osp.join(log_dir, f'{i}.log') for i in range(len(commands))]

    def one(i):
        t0 = time.time()
        if deadline is not None and t0 >= deadline:
            return i, None, 0.0, 'not started: deadline passed'
        timeout = None if deadline is None else deadline - t0
        log = None if logs is None else logs[i]
        if log is None:
            try:
                proc = subprocess.run(
                    commands[i], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True, env=full_env,
                    cwd=cwd, timeout=timeout)
                rc, out = proc.returncode, proc.stdout
            except subprocess.TimeoutExpired as e:
                rc = 'deadline'
                out = e.stdout if isinstance(e.stdout, str) else (
                    e.stdout or b'').decode(errors='replace')
                out += '\nkilled: deadline reached'
            return i, rc, time.time() - t0, out[-3000:]
        os.makedirs(osp.dirname(osp.abspath(log)), exist_ok=True)
        with open_for_writing(log) as f:  # never through a planted link
            try:
                rc = subprocess.run(commands[i], stdout=f,
                                    stderr=subprocess.STDOUT, env=full_env,
                                    cwd=cwd, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = 'deadline'
                f.write('\nkilled: deadline reached')
        return i, rc, time.time() - t0, _tail(log)

    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(one, i) for i in range(len(commands))]
        for fut in futures:
            while poll is not None and not wait([fut], timeout=1).done:
                poll()
            yield fut.result()
    if poll is not None:
        poll()
