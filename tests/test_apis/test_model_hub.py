"""The model zoo by name: ``import occam_plugin`` registers model-index.yml
with mmpretrain's ModelHub, so mmpretrain's ``list_models``, ``get_model``
and inferencers, and ``OccamInferencer``, take the zoo's names; tools and
APIs take a shipped config's name where they took a path. The same from an
installed wheel outside the clone: tests/test_packaging.py."""
import os.path as osp

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import REPO

import occam_plugin  # noqa: F401  (registers the zoo)
from occam_plugin import model_zoo, resolve_config

MNIST_OCCAM = 'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small'
MLP = 'mlp_1xb256_100e_colored-mnist'


def metafile_models():
    with open(osp.join(REPO, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    models = {}
    for metafile in index['Import']:
        with open(osp.join(REPO, metafile)) as f:
            models.update({m['Name']: m for m in yaml.safe_load(f)['Models']})
    return models


def test_every_zoo_model_is_listed_by_mmpretrain_with_its_files():
    import mmpretrain
    from mmpretrain.apis import ModelHub
    models = metafile_models()
    assert len(models) == 5
    assert model_zoo.zoo_model_names() == sorted(models)
    assert mmpretrain.list_models('*occamnets*') == sorted(
        n for n in models if n.startswith('occamnets'))
    for name, entry in models.items():
        metainfo = ModelHub.get(name)
        # relative Weights/Config of the metafile, made absolute: the same
        # files wherever the working directory is
        assert osp.isabs(metainfo.weights), metainfo.weights
        assert osp.samefile(metainfo.weights,
                            osp.join(REPO, entry['Weights']))
        assert osp.samefile(metainfo.config.filename,
                            osp.join(REPO, entry['Config']))


def test_registration_is_idempotent_and_import_never_fails(monkeypatch):
    names = model_zoo.register_model_zoo()
    assert model_zoo.register_model_zoo() == names  # no 'conflict' error
    # a broken index: one warning naming it, no exception
    monkeypatch.setattr(model_zoo, '_registered', [])
    monkeypatch.setattr(model_zoo, 'model_index_path',
                        lambda: '/nonexistent/model-index.yml')
    with pytest.warns(UserWarning, match='/nonexistent/model-index.yml'):
        model_zoo.register_model_zoo_safely()


def test_get_model_by_name_loads_the_published_weights(monkeypatch,
                                                       tmp_path):
    import mmpretrain
    monkeypatch.chdir(tmp_path)  # weights are not found relative to cwd
    model = mmpretrain.get_model(MLP, pretrained=True)
    published = torch.load(
        osp.join(REPO, metafile_models()[MLP]['Weights']),
        weights_only=True)['state_dict']
    state = model.state_dict()
    assert set(published) <= set(state)
    assert all(state[k].equal(v) for k, v in published.items())


def test_inferencers_by_name_use_the_published_weights(monkeypatch,
                                                       tmp_path):
    import mmpretrain
    from occam_plugin.apis import OccamInferencer
    monkeypatch.chdir(tmp_path)
    img = np.random.default_rng(0).integers(0, 255, (80, 80, 3), np.uint8)
    ours = OccamInferencer(MNIST_OCCAM)(img)[0]
    theirs = mmpretrain.ImageClassificationInferencer(MNIST_OCCAM)(img)[0]
    assert ours['exit_scores'].shape == (4, 10)
    assert ours['pred_label'] == theirs['pred_label']
    np.testing.assert_allclose(ours['pred_scores'], theirs['pred_scores'],
                               rtol=1e-5, atol=1e-6)
    # random weights would not give the published model's scores
    random = OccamInferencer(MNIST_OCCAM, pretrained=False)(img)[0]
    assert not np.allclose(random['pred_scores'], ours['pred_scores'])


def test_resolve_config_takes_paths_names_and_repo_paths(monkeypatch,
                                                         tmp_path):
    rel = 'configs/occamnets/' + MNIST_OCCAM + '.py'
    shipped = occam_plugin.get_config_path('occamnets/' + MNIST_OCCAM)
    monkeypatch.chdir(REPO)
    assert resolve_config(rel) == rel  # a file stays as given
    monkeypatch.chdir(tmp_path)  # outside the clone
    for spec in (rel, MNIST_OCCAM, MNIST_OCCAM + '.py'):
        assert resolve_config(spec) == shipped
    own = tmp_path / 'configs' / 'mine.py'
    own.parent.mkdir()
    own.write_text('x = 1\n')
    assert resolve_config('configs/mine.py') == 'configs/mine.py'
    with pytest.raises(FileNotFoundError, match='neither a file') as err:
        resolve_config('configs/nope.py')
    assert 'occam_resnet18_bar.py' in str(err.value)  # lists the shipped


def test_tools_take_a_shipped_config_name(monkeypatch, tmp_path):
    from occam_plugin import cli
    monkeypatch.chdir(tmp_path)
    args = type('Args', (), {'config': MNIST_OCCAM})()
    cfg = cli.load_config(args)
    assert args.config == occam_plugin.get_config_path(MNIST_OCCAM)
    assert cfg.model.type == 'OccamClassifier'
    args.config = 'no_such_config'
    with pytest.raises(SystemExit, match="'no_such_config' is neither"):
        cli.load_config(args)


def test_a_zoo_file_that_no_longer_matches_its_name_hash_is_refused(
        monkeypatch, tmp_path):
    """A zoo entry whose weights file was changed after publishing (here:
    two bytes appended, which torch.load still reads) is refused by
    mmpretrain's get_model and by OccamInferencer, naming the file and both
    sha256 prefixes; the intact file loads."""
    import hashlib
    import shutil

    import mmpretrain
    from mmpretrain.apis import ModelHub
    from occam_plugin.apis import OccamInferencer
    from occam_plugin.engine.runner import CheckpointError
    published = osp.join(REPO, metafile_models()[MLP]['Weights'])
    ckpt = tmp_path / 'zoo' / 'mlp_tampered-06b3283b.pth'
    ckpt.parent.mkdir()
    shutil.copy(published, ckpt)
    (tmp_path / 'zoo' / 'model-index.yml').write_text(
        'Import:\n  - metafile.yml\n')
    (tmp_path / 'zoo' / 'metafile.yml').write_text(yaml.safe_dump(dict(
        Models=[dict(Name='mlp_tampered_zoo_test',
                     Config=osp.join(REPO, metafile_models()[MLP]['Config']),
                     Weights=ckpt.name,
                     Results=[dict(Task='Image Classification',
                                   Dataset='x', Metrics={})])])))
    # a fresh registration of this index alone, undone after the test
    monkeypatch.setattr(ModelHub, '_models_dict', dict(ModelHub._models_dict))
    monkeypatch.setattr(model_zoo, '_registered', [])
    monkeypatch.setattr(model_zoo, 'model_index_path',
                        lambda: str(tmp_path / 'zoo' / 'model-index.yml'))
    assert model_zoo.register_model_zoo() == ['mlp_tampered_zoo_test']

    intact = mmpretrain.get_model('mlp_tampered_zoo_test', pretrained=True)
    with open(ckpt, 'ab') as f:
        f.write(b'\0\0')
    actual = hashlib.sha256(ckpt.read_bytes()).hexdigest()[:8]
    expected = (f"{str(ckpt)!r}: its content does not match the hash in its "
                f'name (expected sha256 prefix 06b3283b, the file has '
                f'{actual})')
    with pytest.raises(CheckpointError) as err:
        mmpretrain.get_model('mlp_tampered_zoo_test', pretrained=True)
    assert expected in str(err.value)
    with pytest.raises(CheckpointError) as err:
        OccamInferencer('mlp_tampered_zoo_test')
    assert expected in str(err.value)
    # random weights are asked for: the file is not read
    OccamInferencer('mlp_tampered_zoo_test', pretrained=False)
    assert intact is not None
