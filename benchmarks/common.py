"""What the benchmark scripts share: the machine line of a report and the
section of ``docs/results.md`` each script owns. Running the training jobs
in parallel processes and reading their results files is
``occam_plugin.cli.runs`` (shared with tools/demo.py)."""
import collections
import collections.abc
import importlib.util
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


#: (module, what to pip-install) the official occam-nets-v1 code imports;
#: none of them is a dependency of ours: install them in a folder of their
#: own, e.g. ``pip install --target DEPS ...`` and PYTHONPATH=DEPS
REFERENCE_DEPS = (('pytorch_lightning', 'pytorch-lightning==1.9.*'),
                  ('pkg_resources', 'setuptools<70'),
                  ('netcal', 'netcal'), ('hydra', 'hydra-core'),
                  ('omegaconf', 'omegaconf'), ('ttach', 'ttach'),
                  ('cv2', 'opencv-python-headless'))
REFERENCE_URL = 'https://github.com/erobic/occam-nets-v1'


def check_reference(ref_dir: str, files) -> str:
    """The absolute folder of a clone of the official OccamNets code, or
    SystemExit saying what is missing: the clone itself, one of the
    ``files`` a benchmark imports, or the Python packages they import."""
    ref = osp.abspath(ref_dir)
    if not osp.isdir(ref):
        raise SystemExit(
            f'--reference {ref_dir}: no such folder ({ref}). Expected a local '
            f'clone of the official OccamNets code ({REFERENCE_URL}), e.g. '
            f'`git clone {REFERENCE_URL} DIR`; its code stays outside this '
            f'repository and is imported from DIR at run time.')
    missing = [f for f in files if not osp.isfile(osp.join(ref, f))]
    if missing:
        raise SystemExit(
            f'--reference {ref_dir}: {ref} is not a clone of {REFERENCE_URL}: '
            f'it lacks {", ".join(missing)} (expected {", ".join(files)}).')
    lacking = [pip for mod, pip in REFERENCE_DEPS
               if importlib.util.find_spec(mod) is None]
    if lacking:
        quoted = ' '.join(f"'{p}'" for p in lacking)
        raise SystemExit(
            f'--reference {ref_dir}: the reference code imports packages that '
            f'are not installed: {", ".join(lacking)}. They are no dependency '
            f'of occam-plugin; install them in a folder of their own (not '
            f'into this environment, whose torch must stay), e.g.\n'
            f'  python -m pip install --no-deps --target DEPS {quoted} '
            f'lightning-utilities torchmetrics antlr4-python3-runtime==4.9.3\n'
            f'and run with PYTHONPATH=DEPS.')
    return ref


def import_reference(ref: str) -> None:
    """Make the reference's top-level packages (models, trainers, utils,
    datasets) importable; import ours before calling this, so theirs shadow
    nothing ours needs."""
    import types
    sys.path.insert(0, ref)
    # Python >= 3.10 removed these aliases; the reference's dict_collate_fn
    # (utils/data_utils.py) still uses collections.Mapping
    for name in ('Mapping', 'Sequence', 'Iterable'):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    try:  # only the reference's generator calls emnist (needs `requests`)
        import emnist  # noqa: F401
    except ImportError:
        stub = types.ModuleType('emnist')
        stub.extract_training_samples = stub.extract_test_samples = None
        sys.modules['emnist'] = stub


def reference_config(ref: str, model: str, num_classes: int, dataset=(),
                     optimizer=()):
    """The reference's own hydra defaults (``conf/*.yaml``, composed as its
    main_config.yaml does): the base dataset, optimizer and trainer files,
    then the named ``dataset`` / ``optimizer`` files over them, and the
    OccamNet trainer's for ``model == 'ref_occam'``."""
    from omegaconf import OmegaConf

    def load(*names):
        parts = [OmegaConf.load(osp.join(ref, 'conf', n)) for n in names]
        for p in parts:
            p.pop('defaults', None)
        return OmegaConf.merge(*parts)

    occam = model == 'ref_occam'
    return OmegaConf.create(dict(
        paths=dict(root='/unused'), seed=0,
        dataset=load('dataset/base_dataset.yaml', *dataset),
        optimizer=load('optimizer/base_optimizer.yaml', *optimizer),
        trainer=load('trainer/base_trainer.yaml',
                     *(['trainer/occam_trainer.yaml'] if occam else [])),
        model=dict(name='occam_resnet18' if occam else 'resnet18',
                   pretrained=False, num_classes=num_classes)))


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
