"""``benchmarks/biased_mnist.py`` and ``benchmarks/bar.py --reference DIR``
(parity with the official occam-nets-v1 code): what it says when the clone
or the reference's own packages are missing. The reference itself is not
installed in CI, so only these errors are tested; the training glue ran in
the benchmark (docs/results.md)."""
import importlib.util
import os.path as osp
import sys

import pytest

from tests.helpers import REPO

sys.path.insert(0, osp.join(REPO, 'benchmarks'))
import bar  # noqa: E402
import biased_mnist  # noqa: E402


def _fake_clone(root):
    for f in biased_mnist.REFERENCE_FILES:
        path = root / f
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('')
    return root


@pytest.mark.parametrize('argv', [
    ['biased_mnist', '--p-bias', '0.8'], ['bar', '--models', 'occam']])
def test_missing_folder_names_it_and_what_is_expected(argv):
    script = dict(bar=bar, biased_mnist=biased_mnist)[argv[0]]
    with pytest.raises(SystemExit) as e:
        script.main(['--reference', '/nonexistent', *argv[1:]])
    msg = str(e.value)
    assert '/nonexistent' in msg and 'no such folder' in msg
    assert 'erobic/occam-nets-v1' in msg and 'git clone' in msg


@pytest.mark.parametrize('script', [bar, biased_mnist])
def test_folder_that_is_not_a_clone_lists_the_missing_files(tmp_path,
                                                            script):
    (tmp_path / 'models').mkdir()
    (tmp_path / 'models' / 'occam_resnet.py').write_text('')
    with pytest.raises(SystemExit) as e:
        script.main(['--reference', str(tmp_path)])
    msg = str(e.value)
    assert 'is not a clone' in msg and 'trainers/occam_trainer.py' in msg
    assert 'lacks models/occam_resnet.py' not in msg  # that one is there


def test_missing_reference_packages_say_what_to_install(tmp_path,
                                                        monkeypatch):
    ref = _fake_clone(tmp_path)
    absent = {'pytorch_lightning', 'netcal'}
    monkeypatch.setattr(  # the others present, whatever this env holds
        importlib.util, 'find_spec',
        lambda name, *a: None if name in absent else object())
    with pytest.raises(SystemExit) as e:
        biased_mnist.main(['--reference', str(ref), '--p-bias', '0.8'])
    msg = str(e.value)
    assert 'not installed: pytorch-lightning==1.9.*, netcal' in msg
    assert '--target DEPS' in msg and 'PYTHONPATH=DEPS' in msg
    assert 'hydra-core' not in msg.split('\n')[0]  # only what is missing


def test_reference_compares_at_one_p_bias(tmp_path, monkeypatch):
    ref = _fake_clone(tmp_path)
    monkeypatch.setattr(importlib.util, 'find_spec', lambda *a: object())
    with pytest.raises(SystemExit, match='one p_bias'):
        biased_mnist.main(['--reference', str(ref), '--p-bias', '0.8',
                           '0.9'])
