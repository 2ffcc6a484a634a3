"""The shipped configs resolve to what they resolved to before their
``_base_`` files were reorganised: the same dict, key for key.

The reference is the tree of configs at commit ``aa05212`` (before the
reorganisation), taken from git; the test is skipped where that history is
not at hand (an sdist, a shallow clone).
"""
import os
import os.path as osp
import subprocess
import tarfile
import io

import pytest
from mmengine.config import Config
from tests.helpers import REPO

BEFORE = 'aa05212'
#: configs removed on purpose since then (misnamed: it held the 20-epoch
#: Binary Colored MNIST run)
REMOVED = {'latent_debias/latent-debias_mlp_1xb256_100e_colored-mnist.py'}
#: registered classes renamed since then (the same class under a name that
#: says what it is)
RENAMED = {'DebiasImageClassifier': 'PlainClassifier',
           'DebiasLinearClsHead': 'MethodLinearClsHead'}


#: changes made on purpose since then: config -> {dotted key: new value}
#: (the BAR baselines' classifier keeps torch's default init, as the
#: reference's; LfF's BAR ResNet inherits it for its biased model)
CHANGED = {
    'resnet/resnet18-w16_1xb64_60e_bar-small.py': {
        'model.head.init_cfg': None},
    'resnet/resnet18_1xb128_90e_bar.py': {'model.head.init_cfg': None},
    'lff/lff_resnet18-w16_1xb64_60e_bar-small.py': {
        'model.biased_model.head.init_cfg': None},
}


#: changes made on purpose since then to every config with Adam: torch's
#: fused Adam (one kernel, the same update to float rounding)
ADAM_CHANGED = {'fused': True}


def changed(name, cfg):
    """``cfg`` with the changes of :data:`CHANGED` and
    :data:`ADAM_CHANGED` made."""
    optimizer = cfg.get('optim_wrapper', {}).get('optimizer', {})
    if optimizer.get('type') == 'Adam':
        optimizer.update(ADAM_CHANGED)
    for key, value in CHANGED.get(name, {}).items():
        *parents, last = key.split('.')
        node = cfg
        for k in parents:
            node = node[k]
        node[last] = value
    return cfg


def shipped_configs(root):
    out = []
    for folder, _, files in os.walk(root):
        out += [osp.relpath(osp.join(folder, f), root) for f in files
                if f.endswith('.py') and '_base_' not in
                osp.relpath(folder, root).split(os.sep)]
    return sorted(out)


@pytest.fixture(scope='module')
def before_tree(tmp_path_factory):
    try:
        archive = subprocess.run(
            ['git', '-C', REPO, 'archive', BEFORE, 'configs'],
            capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f'git history with commit {BEFORE} is not available')
    out = tmp_path_factory.mktemp('configs_before')
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(out)
    return osp.join(out, 'configs')


def resolved(path):
    # the dict as written: building nothing, importing no plugin
    return Config.fromfile(path, import_custom_modules=False).to_dict()


def renamed(cfg):
    """``cfg`` with the ``type=`` of every renamed class renamed."""
    if isinstance(cfg, dict):
        return {k: (RENAMED.get(v, v) if k == 'type' and isinstance(v, str)
                    else renamed(v)) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(renamed(v) for v in cfg)
    return cfg


def test_every_config_still_ships_but_the_removed_one(before_tree):
    before = set(shipped_configs(before_tree))
    now = set(shipped_configs(osp.join(REPO, 'configs')))
    assert before - now == REMOVED


@pytest.mark.parametrize('name', shipped_configs(osp.join(REPO, 'configs')))
def test_config_resolves_as_before(before_tree, name):
    if not osp.isfile(osp.join(before_tree, name)):
        pytest.skip(f'{name} is newer than {BEFORE}: nothing to compare')
    assert resolved(osp.join(REPO, 'configs', name)) == changed(
        name, renamed(resolved(osp.join(before_tree, name)))), name
