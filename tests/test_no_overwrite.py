"""No tool replaces a file it did not create in this run unless the user
says so (``--overwrite``), and no two outputs of one run share a name
(occam_plugin.fileio.OutputClaims, used by every tool that writes)."""
import os
import os.path as osp

import pytest

from tests.helpers import REPO, load_tool
from occam_plugin.fileio import OutputClaims, refuse_overwrite

CONFIG = osp.join(REPO, 'configs', 'occam_resnet18_bar.py')


def test_output_claims(tmp_path):
    old = tmp_path / 'old.pkl'
    old.write_text('an earlier result')
    claims = OutputClaims()
    with pytest.raises(FileExistsError) as err:
        claims.claim(str(old), '--out')
    assert f"--out {str(old)!r} exists and was not written by this run" in \
        str(err.value)
    assert '--overwrite' in str(err.value)
    new = str(tmp_path / 'new.png')
    assert claims.claim(new, 'the grid of a.jpg') == new
    # the same file again, however spelt: two outputs, one name
    with pytest.raises(FileExistsError, match=r"is also the grid of a\.jpg: "
                       'two outputs of one run may not share a name'):
        claims.claim(osp.join(str(tmp_path), '.', 'new.png'), 'b.jpg')
    assert claims.taken(new)
    with pytest.raises(IsADirectoryError, match='is a folder'):
        OutputClaims(overwrite=True).claim(str(tmp_path))
    # the user says so: an existing file may be replaced
    assert refuse_overwrite(str(old), overwrite=True) == str(old)
    # a dangling link is an existing name too
    os.symlink(tmp_path / 'gone', tmp_path / 'link.png')
    with pytest.raises(FileExistsError):
        refuse_overwrite(str(tmp_path / 'link.png'))


def test_test_out_onto_an_existing_file_is_refused_before_testing(tmp_path):
    test = load_tool('test.py')
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'not read: the --out check comes first')
    out = tmp_path / 'preds.pkl'
    out.write_bytes(b'predictions of another run')
    with pytest.raises(SystemExit) as err:
        test.main([CONFIG, str(ckpt), '--out', str(out),
                   '--work-dir', str(tmp_path / 'work')])
    assert f'--out {str(out)!r} exists and was not written by this run' in \
        str(err.value)
    assert out.read_bytes() == b'predictions of another run'
    assert not (tmp_path / 'work').exists()  # nothing ran
    # --overwrite: allowed (the config is only merged here, not run)
    args = test.parse_args([CONFIG, str(ckpt), '--out', str(out),
                            '--overwrite'])
    from occam_plugin import cli
    cfg = test.merge_args(cli.load_config(args), args)
    assert cfg.test_evaluator[-1]['out_file_path'] == str(out)


def test_plot_exit_shares_out_onto_an_existing_file_is_refused(tmp_path):
    import pickle
    plot = load_tool(osp.join('analysis', 'plot_exit_shares.py'))
    preds = tmp_path / 'preds.pkl'
    with open(preds, 'wb') as f:
        pickle.dump([dict(gt_label=0, exit_idx=1), dict(gt_label=1,
                                                        exit_idx=0)], f)
    png = tmp_path / 'shares.png'
    png.write_bytes(b'another plot')
    with pytest.raises(SystemExit, match='exists and was not written'):
        plot.main([str(preds), '--out', str(png)])
    assert png.read_bytes() == b'another plot'
    plot.main([str(preds), '--out', str(png), '--overwrite'])
    assert png.read_bytes()[:4] == b'\x89PNG'


def test_demo_refuses_a_folder_with_an_earlier_demos_log(tmp_path):
    """A folder holding only the console log of an earlier parallel demo
    (``resnet.log``) was taken, and the log overwritten."""
    demo = load_tool('demo.py')
    folder = tmp_path / 'demo'
    folder.mkdir()
    (folder / 'resnet.log').write_text('an earlier demo')
    with pytest.raises(SystemExit, match='holds an earlier demo'):
        demo.claim_work_dir(str(folder), ['resnet', 'occam'])
    assert (folder / 'resnet.log').read_text() == 'an earlier demo'
    os.chdir(tmp_path)  # the default folder: the next free one
    try:
        os.makedirs(osp.join('work_dirs', 'demo'))
        with open(osp.join('work_dirs', 'demo', 'occam.log'), 'w') as f:
            f.write('x')
        assert demo.claim_work_dir(None, ['resnet', 'occam']) == \
            osp.join('work_dirs', 'demo_2')
    finally:
        os.chdir(REPO)


# --- no write of ours follows a symlink out of the work dir ------

def plant_link(tmp_path, name, folder='work'):
    """``tmp_path/<folder>/<name>`` -> ``tmp_path/outside.txt`` (which
    holds 'precious'); returns (link, target)."""
    target = tmp_path / 'outside.txt'
    target.write_text('precious')
    os.makedirs(tmp_path / folder, exist_ok=True)
    link = tmp_path / folder / name
    os.symlink(target, link)
    return link, target


def test_the_atomic_writers_replace_a_planted_link(tmp_path):
    from occam_plugin.fileio import (atomic_path, drop_symlink, write_json,
                                     write_text)
    link, target = plant_link(tmp_path, 'metrics.json')
    write_json(str(link), dict(a=1))
    assert target.read_text() == 'precious' and not osp.islink(link)
    assert link.read_text() == '{"a": 1}'
    # a link planted at the temporary name is not written through either
    tmp = f'{link}.partial-{os.getpid()}'
    os.symlink(target, tmp)
    write_text(str(link), 'mine')
    assert target.read_text() == 'precious' and link.read_text() == 'mine'
    assert not osp.lexists(tmp)
    with atomic_path(str(tmp_path / 'work' / 'x.bin')) as t:
        assert not osp.lexists(t)
        with open(t, 'wb') as f:
            f.write(b'x')
    assert drop_symlink(str(link)) is False  # a file: kept
    os.remove(link)
    os.symlink(target, link)
    assert drop_symlink(str(link)) is True and not osp.lexists(link)
    assert target.read_text() == 'precious'


def test_a_linked_work_dir_lock_is_replaced_not_written_through(tmp_path):
    from occam_plugin.engine.runner import hold_work_dir
    link, target = plant_link(tmp_path, '.occam_lock')
    with hold_work_dir(str(tmp_path / 'work')) as lock:
        assert target.read_text() == 'precious'
        assert not osp.islink(link) and f'"pid": {os.getpid()}' in \
            link.read_text()
        assert 'it was a symbolic link' in lock.note()
    assert target.read_text() == 'precious' and not osp.lexists(link)


@pytest.mark.slow
def test_resume_never_writes_through_a_linked_last_checkpoint(tmp_path):
    """mmengine's CheckpointHook writes <work_dir>/last_checkpoint with
    open(..., 'w'): a symlink planted there had its target overwritten
    with a checkpoint path."""
    from tests.helpers import (TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                               bar_data_options, write_bar_folder)
    root = write_bar_folder(tmp_path / 'BAR')
    work = tmp_path / 'work'

    def train(epochs, *flags):
        load_tool('train.py').main(
            [CONFIG, '--work-dir', str(work), *flags, '--cfg-options',
             *TINY_BAR_OPTIONS, *bar_data_options(root),
             *TINY_RESNET_OPTIONS, f'train_cfg.max_epochs={epochs}',
             'randomness.deterministic=False'])

    train(1)
    os.remove(work / 'last_checkpoint')
    link, target = plant_link(tmp_path, 'last_checkpoint')
    train(2, '--resume')
    assert target.read_text() == 'precious'
    assert not osp.islink(link)
    assert link.read_text().endswith('epoch_2.pth')


def test_a_streamed_log_replaces_a_planted_link(tmp_path):
    """run_commands (tools/demo.py, benchmarks) opened each command's log
    with open(..., 'w'), through a link planted at its name."""
    import sys
    from occam_plugin.cli import run_commands
    from occam_plugin.fileio import open_for_writing, suffixed_temp
    link, target = plant_link(tmp_path, '0.log')
    (result, ) = run_commands([[sys.executable, '-c', 'print("ran")']],
                              logs=[str(link)])
    assert result[1] == 0 and 'ran' in result[3]
    assert target.read_text() == 'precious' and not osp.islink(link)
    os.remove(link)
    os.symlink(target, link)
    with open_for_writing(str(link), binary=True) as f:
        f.write(b'mine')
    assert target.read_text() == 'precious' and link.read_bytes() == b'mine'
    assert suffixed_temp('/a/grid.png') == (
        f'/a/.grid.partial-{os.getpid()}.png')
