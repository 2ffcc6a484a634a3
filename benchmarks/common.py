"""What the benchmark scripts share: the machine line of a report and the
section of ``docs/results.md`` each script owns. Running the training jobs
in parallel processes and reading their results files is
``occam_plugin.engine.runner.runs`` (shared with tools/demo.py)."""
import os
import os.path as osp
import platform
import statistics
import sys


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


PYTHON = sys.executable
