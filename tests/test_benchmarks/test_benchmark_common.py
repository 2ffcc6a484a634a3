"""The helpers the benchmark scripts share (benchmarks/common.py: each
script owns one section of docs/results.md and must not touch the others)
and what they share with tools/demo.py (occam_plugin.cli.runs:
the parallel runner and the readers of a run's results files)."""
import json
import os
import os.path as osp
import sys

from tests.helpers import REPO

from occam_plugin.cli import (newest, read_metrics, read_records,
                              run_commands)

sys.path.insert(0, osp.join(REPO, 'benchmarks'))
from common import mean_std, write_section  # noqa: E402


def test_write_section_replaces_only_its_own_block(tmp_path):
    md = tmp_path / 'results.md'
    write_section(str(md), 'a.py', 'first A\n')
    write_section(str(md), 'b.py', 'first B')
    md.write_text(md.read_text() + '\nhand-written note\n')
    write_section(str(md), 'a.py', 'second A')
    text = md.read_text()
    assert text.count('<!-- a.py begin -->') == 1
    assert 'second A' in text and 'first A' not in text
    assert 'first B' in text and text.endswith('hand-written note\n')
    assert text.index('second A') < text.index('first B')  # kept its place


def test_mean_std_is_the_sample_std_and_skips_missing():
    assert mean_std([1.0, 2.0, 3.0]) == '2.00 ± 1.00'
    assert mean_std([None, 4.0]) == '4.00'
    assert mean_std([None]) == '-'


def test_run_commands_gives_each_process_its_thread_share(tmp_path):
    py = sys.executable
    cmds = [[py, '-c', 'import os; print(os.environ["OMP_NUM_THREADS"])'],
            [py, '-c', 'raise SystemExit(3)']]
    out = list(run_commands(cmds, jobs=2, log_dir=str(tmp_path),
                            threads=1))
    assert [(i, rc) for i, rc, _, _ in out] == [(0, 0), (1, 3)]
    assert out[0][3].strip() == '1'
    assert (tmp_path / '0.log').read_text().strip() == '1'


def test_run_commands_deadline_kills_running_and_skips_waiting(tmp_path):
    # a lease of fixed length: what finished is reported, a run still going
    # at the deadline is killed ('deadline'), one not started is skipped
    import time
    py = sys.executable
    cmds = [[py, '-c', 'print("quick")'],
            [py, '-c', 'import time; print("slow", flush=True); '
             'time.sleep(30)'],
            [py, '-c', 'print("never")']]
    t0 = time.time()
    out = list(run_commands(cmds, jobs=1, log_dir=str(tmp_path),
                            deadline=time.time() + 3))
    assert time.time() - t0 < 20
    assert [rc for _, rc, _, _ in out] == [0, 'deadline', None]
    assert 'slow' in out[1][3] and 'deadline' in out[1][3]
    assert 'never' not in out[2][3]


def test_run_commands_named_logs_env_cwd_and_poll(tmp_path):
    py = sys.executable
    logs = [str(tmp_path / 'logs' / 'a.log'), str(tmp_path / 'b.log')]
    code = ('import os, time; print(os.environ["EXTRA"], os.getcwd(), '
            'flush=True); time.sleep(1.5)')
    calls = []
    out = list(run_commands([[py, '-c', code], [py, '-c', code]], jobs=2,
                            logs=logs, env=dict(EXTRA='x'),
                            cwd=str(tmp_path), poll=lambda: calls.append(
                                [osp.isfile(p) for p in logs])))
    assert [rc for _, rc, _, _ in out] == [0, 0]
    for (_, _, seconds, tail), log in zip(out, logs):
        assert seconds >= 1.5
        assert tail == f'x {tmp_path}\n'
        with open(log) as f:
            assert f.read() == tail  # written while it ran, kept
    # polled while the runs went on (about once a second), and once after
    assert 2 <= len(calls) <= 4 and calls[-1] == [True, True]


def test_readers_of_a_runs_results_files(tmp_path):
    old, new = tmp_path / '20250101_000000', tmp_path / '20250102_000000'
    for folder, acc in ((old, 1.0), (new, 2.0)):
        folder.mkdir()
        (folder / 'bias_metrics.json').write_text(json.dumps(
            dict(metrics={'bias/acc': acc}, groups={})))
    (new / 'exit_metrics.json').write_text(json.dumps(
        dict(metrics={'exit/share_e0': 25.0})))
    os.utime(old / 'bias_metrics.json', (1, 1))  # the older by mtime
    found = newest(str(tmp_path / '*' / 'bias_metrics.json'))
    assert found == str(new / 'bias_metrics.json')
    assert newest(str(tmp_path / '*' / 'none.json')) is None
    assert read_metrics(str(new)) == {'bias/acc': 2.0,
                                      'exit/share_e0': 25.0}
    assert read_metrics(str(old)) == {'bias/acc': 1.0}  # no exit file
    assert read_metrics(str(new), ('exit_metrics.json', )) == {
        'exit/share_e0': 25.0}
    scalars = tmp_path / 'scalars.json'
    scalars.write_text('{"loss": 1.0, "step": 1}\n'
                       '{"accuracy/top1": 50.0, "step": 1}\n'
                       '{"loss": 0.5, "step": 2}\n'
                       '{"accuracy/top1": 75.0, "step": 2}\n')
    assert read_records(str(scalars), 'accuracy/top1') == [
        {'accuracy/top1': 50.0, 'step': 1},
        {'accuracy/top1': 75.0, 'step': 2}]
    assert read_records(str(scalars), 'bias/acc') == []


def test_versus_erm_counts_seeds_ahead_of_occam_erm_of_the_same_seed():
    import methods

    def row(model, method, seed, acc):
        return dict(model=model, method=method, seed=seed,
                    **{'bias/unbiased_acc': acc})
    rows = [row('OccamResNet-18', 'ERM', 0, 40.0),
            row('OccamResNet-18', 'ERM', 1, 44.0),
            row('OccamResNet-18', 'gDRO', 0, 41.0),
            row('OccamResNet-18', 'gDRO', 1, 43.0),  # behind in seed 1
            row('ResNet-18', 'ERM', 0, 30.0),
            row('ResNet-18', 'ERM', 1, None)]  # failed: not compared
    lines = {tuple(c.strip() for c in ln.split('|')[1:3]): ln
             for ln in methods.versus_erm(rows).splitlines()[2:]}
    gdro = lines[('OccamResNet-18', 'gDRO')]
    # mean 42.0 vs 42.0; per seed +1.0 and -1.0: ahead in 1 of 2
    assert '| 42.0 | +0.0 | +0.0 | s0 +1.0, s1 -1.0 | 1/2 seeds |' in gdro
    resnet = lines[('ResNet-18', 'ERM')]
    assert '| 30.0 | +0.0 | -12.0 | s0 -10.0 | 0/1 seeds |' in resnet


def test_jtt_settings_fixed_before_any_run():
    import argparse

    import methods

    def settings(**kw):
        args = dict(p_bias=None, epochs=10, jtt_epochs=None,
                    jtt_lambda_up=None)
        args.update(kw)
        return methods.jtt_settings(argparse.Namespace(**args))
    # T a fifth of the epochs; (1 - p)(1 + lambda_up) = p
    assert settings() == (2, 3)  # the config's p_bias 0.8
    assert settings(p_bias=0.9, epochs=30) == (6, 8)
    assert settings(p_bias=0.5, epochs=2) == (1, 1)  # at least 1 each
    assert settings(jtt_epochs=4, jtt_lambda_up=20) == (4, 20)


def test_dfr_commands_fit_on_val_then_test(tmp_path):
    import argparse

    import methods
    args = argparse.Namespace(epochs=10)
    opts = ['model.backbone.base_channels=16', methods.VAL_ON_TEST]
    work = tmp_path / 'dfr'
    fit, test = methods.dfr_commands(args, 'configs/x.py', opts, 1,
                                     str(tmp_path / 'erm'), str(work))
    assert fit[1].endswith('tools/dfr.py')
    assert fit[3] == str(tmp_path / 'erm' / 'epoch_10.pth')
    assert fit[fit.index('--seed') + 1] == '1'
    # DFR fits on the real val split: the grid's val-on-test option is gone
    for cmd in (fit, test):
        assert methods.VAL_ON_TEST not in cmd
        assert 'model.backbone.base_channels=16' in cmd
    assert test[1].endswith('tools/test.py')
    assert test[3] == str(work / 'dfr_epoch_10.pth')
    assert test[test.index('--work-dir') + 1] == str(work / 'test')
    # a refit already on disk is tested, not fitted again
    work.mkdir()
    (work / 'dfr_epoch_10.pth').write_bytes(b'')
    (only, ) = methods.dfr_commands(args, 'configs/x.py', opts, 1,
                                    str(tmp_path / 'erm'), str(work))
    assert only[1].endswith('tools/test.py')
