"""Packaging: the wheel a user gets from ``pip install .``.

Builds the wheel from a copy of the repository's packaging inputs (so no
stale ``build/`` of the checkout leaks in), then checks what it carries
(configs and tools in ``occam_plugin/.mim``, LICENSE), its metadata (ranges,
not pins; extras) and that, installed outside the repository, a shipped
config builds a model. No network: ``--no-index``, ``--no-deps``, and the
test environment's own dependencies.
"""
import email
import importlib.util
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
INPUTS = ('setup.py', 'MANIFEST.in', 'README.md', 'LICENSE', 'CITATION.cff',
          'requirements.txt', 'occam_plugin', 'configs', 'tools')
CORE = ('torch', 'mmengine', 'mmcv-lite', 'mmpretrain', 'timm', 'numpy')
MIM = 'occam_plugin/.mim/'


def _pip(*args, cwd):
    proc = subprocess.run([sys.executable, '-m', 'pip', *args,
                           '--no-index', '--disable-pip-version-check'],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('pkg')
    src = tmp / 'src'
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim',
                                    '*.egg-info')
    for name in INPUTS:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            os.makedirs(src, exist_ok=True)
            shutil.copy(path, src / name)
    _pip('wheel', str(src), '--no-deps', '--no-build-isolation', '-w',
         str(tmp / 'dist'), cwd=tmp)
    wheels = list((tmp / 'dist').glob('occam_plugin-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _names(wheel):
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def _metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta = [n for n in z.namelist() if n.endswith('.dist-info/METADATA')]
        return email.message_from_bytes(z.read(meta[0]))


@pytest.mark.slow
def test_wheel_ships_configs_tools_and_license(wheel):
    names = _names(wheel)
    assert MIM + 'configs/occam_resnet18_bar.py' in names
    # every config and _base_ file of the repository, same relative layout
    for dirpath, dirnames, filenames in os.walk(osp.join(REPO, 'configs')):
        dirnames[:] = [d for d in dirnames if d != '__pycache__']
        for f in filenames:
            if f.endswith('.py'):
                rel = osp.relpath(osp.join(dirpath, f), REPO)
                assert MIM + rel.replace(os.sep, '/') in names, rel
    assert MIM + 'configs/_base_/default_runtime.py' in names
    for tool in ('train.py', 'test.py', 'dist_train.sh'):
        assert MIM + 'tools/' + tool in names
    assert any(n.endswith('.dist-info/LICENSE')
               or n.endswith('.dist-info/licenses/LICENSE') for n in names)
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]


def test_metadata_has_ranges_not_pins(wheel):
    meta = _metadata(wheel)
    reqs = [Requirement(r) for r in meta.get_all('Requires-Dist')]
    core = {r.name.lower(): r for r in reqs if r.marker is None}
    assert set(CORE) <= set(core), sorted(core)
    for r in reqs:
        assert not any(s.operator in ('==', '===') for s in r.specifier), r
    for name in CORE:  # a floor and a ceiling each
        ops = {s.operator for s in core[name].specifier}
        assert '>=' in ops and '<' in ops, core[name]
    # never imported by the plugin (mmengine / mmpretrain require it)
    assert 'rich' not in core
    # feature-only dependencies are extras, not core
    for dist in ('h5py', 'scikit-learn', 'mlxtend'):
        assert dist not in core
    extras = set(meta.get_all('Provides-Extra'))
    assert {'coco', 'fairness', 'mnist', 'all'} <= extras
    assert meta['License'] == 'Apache-2.0'


def test_pinned_stack_satisfies_the_ranges(wheel):
    """requirements.txt (what CI installs) lies inside the metadata ranges,
    extras included."""
    reqs = [Requirement(r) for r in _metadata(wheel).get_all('Requires-Dist')]
    ranges = {}
    for r in reqs:
        ranges.setdefault(r.name.lower(), []).append(r.specifier)
    with open(osp.join(REPO, 'requirements.txt')) as f:
        pins = [Requirement(line.split('#')[0].strip()) for line in f
                if line.split('#')[0].strip()]
    checked = 0
    for pin in pins:
        (spec,) = list(pin.specifier)
        assert spec.operator == '==', pin
        for rng in ranges.get(pin.name.lower(), []):
            assert rng.contains(Version(spec.version)), (pin, rng)
            checked += 1
    assert checked >= len(CORE) + 3


@pytest.mark.slow
def test_installed_wheel_builds_a_model_from_a_shipped_config(wheel, tmp_path):
    """Outside the repository (cwd elsewhere, package from the wheel only),
    every shipped config loads with its _base_ files and custom_imports, and
    one model builds and runs."""
    target = tmp_path / 'site'
    _pip('install', str(wheel), '--no-deps', '--target', str(target),
         cwd=tmp_path)
    script = textwrap.dedent(f"""
        import os.path as osp
        import torch
        from mmengine.config import Config
        import occam_plugin
        from occam_plugin import get_config_path, list_configs
        assert occam_plugin.__file__.startswith({str(target)!r}), \\
            occam_plugin.__file__
        names = list_configs()
        assert 'occam_resnet18_bar.py' in names and len(names) >= 10, names
        for name in names:
            path = get_config_path(name)
            assert path.startswith({str(target)!r}), path
            Config.fromfile(path)
        cfg = Config.fromfile(get_config_path('occam_resnet18_bar'))
        assert cfg.custom_imports['imports'] == ['occam_plugin']
        from mmpretrain.registry import MODELS
        model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            out = model(torch.zeros(1, 3, 64, 64), mode='tensor')
        print('BUILT', type(model).__name__, type(out).__name__)
    """)
    env = dict(os.environ, PYTHONPATH=str(target))
    proc = subprocess.run([sys.executable, '-c', script], cwd=tmp_path,
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'BUILT OccamClassifier' in proc.stdout, proc.stdout


def test_get_config_path_finds_by_relative_path_or_unique_name():
    from occam_plugin import get_config_path
    path = get_config_path('lff/lff_mlp_1xb256_100e_colored-mnist.py')
    assert osp.isfile(path)
    assert get_config_path('lff_mlp_1xb256_100e_colored-mnist') == path
    with pytest.raises(FileNotFoundError, match='occam_resnet18_bar.py'):
        get_config_path('no_such_config.py')


def test_missing_extra_names_the_extra(monkeypatch):
    from occam_plugin import extras
    real = importlib.util.find_spec
    monkeypatch.setattr(
        extras.importlib.util, 'find_spec',
        lambda name, *a: None if name in ('h5py', 'sklearn') else real(
            name, *a))
    with pytest.raises(ImportError, match=r'occam-plugin\[coco\]'):
        extras.import_extra('h5py', 'coco', 'The COCO-on-Places reader')
    from occam_plugin.evaluation.metrics.fairness_metric import \
        FairnessMetric
    with pytest.raises(ImportError, match=r'occam-plugin\[fairness\]'):
        FairnessMetric()
