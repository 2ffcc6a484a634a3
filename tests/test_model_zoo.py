"""The model zoo: every model in model-index.yml has its config, its
published weights (loadable strictly with weights_only), and reproduces its
metafile number on its test split (Biased MNIST small, generated in seconds).
"""
import os.path as osp

import pytest
import yaml

from conftest import REPO, load_tool

INDEX = osp.join(REPO, 'model-index.yml')


def zoo_models():
    with open(INDEX) as f:
        index = yaml.safe_load(f)
    models = []
    for metafile in index['Import']:
        with open(osp.join(REPO, metafile)) as f:
            models += yaml.safe_load(f)['Models']
    return models


MODELS_ = zoo_models()


def test_index_lists_every_metafile_and_their_files_exist():
    assert {m['In Collection'] for m in MODELS_} == {'OccamNets', 'ResNet'}
    for m in MODELS_:
        assert osp.isfile(osp.join(REPO, m['Config'])), m['Config']
        assert osp.isfile(osp.join(REPO, m['Weights'])), m['Weights']
        # <name>-<sha256[:8]>.pth, as tools/publish_model.py writes it
        assert osp.basename(m['Weights']).startswith(m['Name'] + '-')


@pytest.mark.parametrize('model', MODELS_, ids=[m['Name'] for m in MODELS_])
def test_published_weights_reproduce_the_metafile_number(model, tmp_path):
    result, = model['Results']
    expected = result['Metrics']['Unbiased Top 1 Accuracy']
    # the test split of the config's data, generated (same params, seed 0)
    opts = [f'test_dataloader.dataset.data_root={tmp_path / "data"}',
            'test_dataloader.num_workers=0']
    metrics = load_tool('test.py').main(
        [osp.join(REPO, model['Config']), osp.join(REPO, model['Weights']),
         '--work-dir', str(tmp_path / 'run'), '--cfg-options', *opts])
    assert round(metrics['bias/unbiased_acc'], 2) == expected
