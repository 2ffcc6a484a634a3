"""Prediction dumps (``tools/test.py --out``) are loaded with an allow-list
unpickler: a crafted ``.pkl`` cannot run code, a real dump loads unchanged."""
import io
import os
import os.path as osp
import pickle
import subprocess

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator

import occam_plugin  # noqa: F401  (registers)
from tests.helpers import REPO, write_bar_folder
from mmpretrain.registry import DATASETS, MODELS
from occam_plugin.evaluation import load_predictions


class _Call:
    """Pickles as ``func(*args)``: what a crafted pickle makes ``load`` do."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _crafted_payloads(marker):
    """Objects whose unpickling writes ``marker`` (three routes to code)."""
    return {
        'os.system': _Call(os.system, f'touch {marker}'),
        'builtins.exec': _Call(exec, f'open({str(marker)!r}, "w").close()'),
        'subprocess.call': _Call(subprocess.call, ['touch', str(marker)]),
    }


def _plot_tool():
    """``tools/analysis/plot_exit_shares.py`` as a module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'occam_tools_plot_exit_shares',
        osp.join(REPO, 'tools', 'analysis', 'plot_exit_shares.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=2)  # mmengine's DumpResults protocol
    return str(path)


@pytest.mark.parametrize('route', ['os.system', 'builtins.exec',
                                   'subprocess.call'])
def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path, route):
    marker = tmp_path / 'pwned'
    payload = _crafted_payloads(marker)[route]
    # hidden inside an ordinary-looking prediction list
    pkl = _write(tmp_path / 'preds.pkl',
                 [dict(gt_label=torch.tensor([0]), exit_idx=1, x=payload)])
    with pytest.raises(pickle.UnpicklingError) as err:
        load_predictions(pkl)
    msg = str(err.value)
    refused = 'posix.system' if route == 'os.system' else route
    assert pkl in msg and refused in msg
    assert 'torch._utils._rebuild_tensor_v2' in msg  # says what is allowed
    assert not marker.exists()
    # the plotting tool refuses it as well, before writing anything
    tool = _plot_tool()
    with pytest.raises(pickle.UnpicklingError, match='refused'):
        tool.main([pkl, '--out', str(tmp_path / 'shares.png')])
    assert not marker.exists()
    assert not (tmp_path / 'shares.png').exists()
    # control: the file really is an exploit for a plain unpickler
    with open(pkl, 'rb') as f:
        pickle.load(f)
    assert marker.exists()


def test_tensor_storage_payload_is_refused(tmp_path):
    """``torch.storage._load_from_bytes`` is allowed (every pickled tensor
    uses it) but must not ``torch.load`` its bytes with weights_only off."""
    marker = tmp_path / 'pwned'
    inner = io.BytesIO()
    torch.save(_Call(os.system, f'touch {marker}'), inner)
    from torch.storage import _load_from_bytes
    pkl = _write(tmp_path / 'preds.pkl',
                 [dict(pred_score=_Call(_load_from_bytes, inner.getvalue()))])
    with pytest.raises(pickle.UnpicklingError) as err:
        load_predictions(pkl)
    assert pkl in str(err.value) and 'weights_only' in str(err.value)
    assert not marker.exists()
    with open(pkl, 'rb') as f:  # control: plain pickle runs it
        pickle.load(f)
    assert marker.exists()


def test_not_a_prediction_list(tmp_path):
    pkl = _write(tmp_path / 'x.pkl', dict(a=1))
    with pytest.raises(ValueError, match='expected a list of per-sample'):
        load_predictions(pkl)
    with pytest.raises(FileNotFoundError, match='nowhere.pkl'):
        load_predictions(str(tmp_path / 'nowhere.pkl'))


@pytest.fixture(scope='module')
def real_dump(tmp_path_factory):
    """A dump written by mmengine's ``DumpResults`` from the DataSamples a
    tiny OccamNet predicts on a BAR folder (as ``tools/test.py --out``)."""
    tmp = tmp_path_factory.mktemp('dump')
    root = write_bar_folder(tmp / 'BAR', per_class=1, splits=('test', ))
    dataset = DATASETS.build(dict(
        type='BAR', data_root=root, split='test',
        pipeline=[dict(type='LoadImageFromFileChecked'),
                  dict(type='PackBiasInputs')]))
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='OccamClassifier', inference_mode='dynamic',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=6),
        backbone=dict(type='ResNet', depth=18, stem_channels=8,
                      base_channels=8, out_indices=(0, 1, 2, 3)),
        neck=dict(type='ExitNeck'),
        head=dict(type='OccamHead', num_classes=6, exit_threshold=0.5)))
    model.eval()
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        outputs = model.test_step(batch)
    out = str(tmp / 'preds.pkl')
    evaluator = Evaluator([dict(type='DumpResults', out_file_path=out)])
    evaluator.process(outputs, batch)
    evaluator.evaluate(len(outputs))
    expected = [o.to_dict() for o in outputs]
    return out, expected


def test_real_dump_loads_unchanged(real_dump):
    pkl, expected = real_dump
    preds = load_predictions(pkl)
    assert len(preds) == len(expected) == 6
    for got, want in zip(preds, expected):
        assert set(got) == set(want)
        for key in ('pred_score', 'pred_label', 'gt_label', 'exit_scores',
                    'exit_gates', 'exit_idx', 'flops', 'img_path',
                    'sample_idx', 'ori_shape'):
            assert key in got, key
        for key, value in want.items():
            if isinstance(value, torch.Tensor):
                assert isinstance(got[key], torch.Tensor), key
                assert got[key].dtype == value.dtype, key
                # dynamic mode leaves NaN for exits a sample never reached
                assert torch.equal(got[key].isnan(), value.isnan()), key
                assert torch.equal(got[key].nan_to_num(), value.nan_to_num())
            else:
                assert got[key] == value, key


def test_numpy_and_python_values_load(tmp_path):
    """What a biased dataset adds to a sample (numpy arrays and scalars,
    nested dicts, tuples, sets, bytes), under pickle protocols 2 and 5."""
    preds = [dict(gt_label=torch.tensor([3]), exit_idx=2,
                  bias_factors=np.arange(7, dtype=np.int64),
                  bias_label=np.int64(4), bias_aligned=np.bool_(True),
                  score=np.float32(0.25), weights=np.ones((2, 3), np.float16),
                  meta=dict(shape=(32, 32), tags={'a', 'b'}, raw=b'\x00\xff',
                            name='climbing_0.jpg', none=None, f=1.5))]
    for protocol in (2, 5):
        pkl = tmp_path / f'p{protocol}.pkl'
        with open(pkl, 'wb') as f:
            pickle.dump(preds, f, protocol=protocol)
        got = load_predictions(str(pkl))[0]
        assert torch.equal(got['gt_label'], preds[0]['gt_label'])
        for key in ('bias_factors', 'weights'):
            np.testing.assert_array_equal(got[key], preds[0][key])
            assert got[key].dtype == preds[0][key].dtype
        for key in ('bias_label', 'bias_aligned', 'score'):
            assert got[key] == preds[0][key]
            assert type(got[key]) is type(preds[0][key])
        assert got['meta'] == preds[0]['meta']


@pytest.mark.slow
def test_plot_exit_shares_on_a_real_dump(real_dump, tmp_path):
    pkl, expected = real_dump
    tool = _plot_tool()
    out = tmp_path / 'shares.png'
    stats = tool.main([pkl, '--out', str(out)])
    assert out.stat().st_size > 0
    assert stats['classes'] == sorted({int(e['gt_label'][0])
                                       for e in expected})
    exits = np.bincount([e['exit_idx'] for e in expected], minlength=4)
    np.testing.assert_allclose(stats['overall'], exits / exits.sum())
