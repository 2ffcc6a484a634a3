"""tools/analysis/plot_exit_shares.py names the classes: by ``--classes``,
else by the test dataset of ``--config`` (read without opening the data),
else by index with a note."""
import os.path as osp

import mmengine
import pytest
import torch

from tests.helpers import REPO, load_tool

BAR_CFG = osp.join(REPO, 'configs', 'occam_resnet18_bar.py')


@pytest.fixture
def tool():
    return load_tool(osp.join('analysis', 'plot_exit_shares.py'))


@pytest.fixture
def preds_pkl(tmp_path):
    # BAR ids 0 (climbing): exits 0, 1; 3 (pole vaulting): exit 1
    preds = [dict(gt_label=torch.tensor([0]), exit_idx=0),
             dict(gt_label=torch.tensor([0]), exit_idx=1),
             dict(gt_label=torch.tensor([3]), exit_idx=1)]
    pkl = tmp_path / 'preds.pkl'
    mmengine.dump(preds, str(pkl))
    return str(pkl)


@pytest.fixture
def tick_labels(monkeypatch):
    """The x tick labels of every figure the tool closes."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    seen = []
    close = plt.close

    def record(fig=None):
        seen.append([t.get_text() for t in fig.axes[0].get_xticklabels()])
        close(fig)
    monkeypatch.setattr(plt, 'close', record)
    return seen


def table_labels(out):
    """The class column of the printed table (header and 'all' row not)."""
    lines = out.splitlines()
    assert lines[0].startswith('class\t'), out
    rows = lines[1:lines.index(next(ln for ln in lines
                                    if ln.startswith('all\t')))]
    return [ln.split('\t')[0] for ln in rows]


def test_class_names_from_the_config(tool, preds_pkl, tmp_path, capsys,
                                     tick_labels):
    tool.main([preds_pkl, '--out', str(tmp_path / 'a.png'), '--config',
               BAR_CFG])
    captured = capsys.readouterr()
    assert table_labels(captured.out) == ['climbing', 'pole vaulting']
    assert tick_labels == [['climbing', 'pole vaulting', 'all']]
    assert 'note' not in captured.err
    # a shipped config by name, as outside a clone
    tool.main([preds_pkl, '--out', str(tmp_path / 'b.png'), '--config',
               'occam_resnet18_bar'])
    assert table_labels(capsys.readouterr().out) == ['climbing',
                                                     'pole vaulting']
    with pytest.raises(SystemExit, match='--config: .*no_such_config'):
        tool.main([preds_pkl, '--out', str(tmp_path / 'c.png'), '--config',
                   'no_such_config'])


def test_class_names_given(tool, preds_pkl, tmp_path, capsys, tick_labels):
    tool.main([preds_pkl, '--out', str(tmp_path / 'a.png'), '--classes',
               'a', 'b', 'c', 'd'])
    assert table_labels(capsys.readouterr().out) == ['a', 'd']
    assert tick_labels == [['a', 'd', 'all']]
    # too few names: refused, not a mix of names and ids
    with pytest.raises(SystemExit, match=r'class ids \[3\] .* no name in '
                       r"the 2 class names \['a', 'b'\]"):
        tool.main([preds_pkl, '--out', str(tmp_path / 'b.png'), '--classes',
                   'a', 'b'])


def test_indices_with_a_note(tool, preds_pkl, tmp_path, capsys,
                             tick_labels):
    tool.main([preds_pkl, '--out', str(tmp_path / 'a.png')])
    captured = capsys.readouterr()
    assert table_labels(captured.out) == ['0', '3']
    assert tick_labels == [['0', '3', 'all']]
    assert 'shown by index' in captured.err and '--config' in captured.err
    # a dataset config that names no classes (a folder of sub-folders)
    cfg = tmp_path / 'folder.py'
    cfg.write_text("default_scope = 'mmpretrain'\n"
                   "test_dataloader = dict(dataset=dict(type='CustomDataset',"
                   " data_root='nowhere'))\n")
    tool.main([preds_pkl, '--out', str(tmp_path / 'b.png'), '--config',
               str(cfg)])
    captured = capsys.readouterr()
    assert table_labels(captured.out) == ['0', '3']
    assert f'test dataset of {cfg} names no classes' in captured.err


def test_dataset_class_names_looks_through_wrappers(tmp_path):
    from occam_plugin.visualization import dataset_class_names
    import occam_plugin  # noqa: F401
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    bar = dict(type='BAR', data_root='nowhere')
    assert dataset_class_names(dict(type='ClassBalancedDataset',
                                    oversample_thr=0.1, dataset=bar))[:2] == [
        'climbing', 'diving']
    # the config's own metainfo comes before the type's
    assert dataset_class_names(dict(bar, metainfo=dict(
        classes=('x', 'y')))) == ['x', 'y']
    names = tmp_path / 'names.txt'
    names.write_text('cat\ndog\n')
    assert dataset_class_names(dict(type='CustomDataset',
                                    classes=str(names))) == ['cat', 'dog']
    assert dataset_class_names(dict(type='CustomDataset')) is None
