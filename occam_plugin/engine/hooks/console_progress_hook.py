"""A concise console for quiet runs: one progress line per epoch and the key
metrics; mmengine's full log goes to the log file only."""
import datetime
import sys
import time
from typing import Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

__all__ = ['format_metrics', 'ConsoleProgressHook']

#: metrics shown on the console when the evaluator returns them (the rest
#: are in the log file and the metrics JSON files)
KEY_METRICS = ('accuracy/top1', 'bias/unbiased_acc', 'bias/worst_group_acc',
               'bias/conflicting_acc', 'exit/expected_compute')


def format_metrics(metrics: dict, keys: Sequence[str] = KEY_METRICS,
                   max_other: int = 4) -> str:
    """``metrics`` as one short string: the ``keys`` it has, else its first
    ``max_other`` entries; the count of the others is named."""
    shown = [k for k in keys if k in metrics] or list(metrics)[:max_other]
    parts = []
    for k in shown:
        v = metrics[k]
        parts.append(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}')
    rest = len(metrics) - len(shown)
    if rest > 0:
        parts.append(f'(+{rest} more in the log)')
    return '  '.join(parts)


@HOOKS.register_module()
class ConsoleProgressHook(Hook):
    """What a quiet run (``console='quiet'``) prints on the console.

    ``SafeRunner`` adds it (``default_hooks.console``) when the console is
    quiet, and then lets only warnings and errors of the logger through to
    the console; every mmengine message still goes to the log file, whose
    path this hook prints first. It prints:

    - on a terminal: a progress bar per training epoch (``rich``) that
      stays as that epoch's line, and a transient bar while validating or
      testing;
    - otherwise (a pipe, a file, a CI log): one line per epoch, written when
      the epoch ends, and nothing per iteration;
    - the epoch's line (and the bar) in the words of mmengine's log:
      ``epoch 1/2  [1][6/6]  lr: 1.0000e-03  eta: 0:01:05  loss: 0.6931
      3.1s``: ``[epoch][iteration/iterations]``, the lr, the eta of the
      whole run (``IterTimerHook``'s in the message hub, as mmengine's
      ``LogProcessor`` prints it; without that hook, from this run's
      elapsed time per iteration), the epoch's mean loss and its time;
    - when a run resumes: ``Resumed from <checkpoint> at epoch N
      (iteration I); ...`` (mmengine's own line is INFO, hidden here);
    - after each validation and test: the key metrics the evaluator
      returned (:data:`KEY_METRICS`, or its first few when it returns none
      of them).

    Only the main process prints.

    Args:
        tty (bool, optional): Draw progress bars. Defaults to None: when
            ``sys.stdout`` is a terminal.
        keys (Sequence[str]): Metrics shown after validation and test.
            Defaults to :data:`KEY_METRICS`.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, tty: Optional[bool] = None,
                 keys: Sequence[str] = KEY_METRICS):
        self.tty = tty
        self.keys = tuple(keys)
        self._bar = None
        self._named_log = None
        self._epoch_start = 0.0
        self._losses = []
        self._train_start = (0.0, 0)  # time, runner.iter
        self._eta = None

    # -- output ---------------------------------------------------------
    def _print(self, line: str) -> None:
        if self._bar is not None:  # above a live bar, not through it
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, flush=True)

    def _start_bar(self, description: str, total: int,
                   transient: bool) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                                   TextColumn, TimeElapsedColumn)
        # a training bar's info starts with its [epoch][iter/iters]
        count = () if not transient else (MofNCompleteColumn(), )
        self._bar = Progress(
            TextColumn('{task.description}'), BarColumn(), *count,
            TextColumn('{task.fields[info]}'),
            TimeElapsedColumn(), console=Console(file=sys.stdout),
            transient=transient)
        self._bar.add_task(description, total=total, info='')
        self._bar.start()

    def _advance(self, info: str = '') -> None:
        if self._bar is not None:
            task = self._bar.task_ids[0]
            self._bar.update(task, advance=1, info=info)

    def _stop_bar(self, info: Optional[str] = None) -> None:
        if self._bar is not None:
            if info is not None:
                self._bar.update(self._bar.task_ids[0], info=info)
            self._bar.stop()
            self._bar = None

    @staticmethod
    def _length(loader) -> Optional[int]:
        try:
            return len(loader)
        except TypeError:  # an iterable without a length
            return None

    # -- run ------------------------------------------------------------
    def before_run(self, runner) -> None:
        if self.tty is None:
            self.tty = sys.stdout.isatty()
        # once per log file (a runner's train() and test() share one)
        log_file = runner.logger.log_file
        if is_main_process() and log_file != self._named_log:
            self._named_log = log_file
            print(f'Full log: {log_file} (quiet console; --verbose or '
                  "console='verbose' shows it here)", flush=True)

    def after_run(self, runner) -> None:
        self._stop_bar()

    # -- training -------------------------------------------------------
    def before_train(self, runner) -> None:
        self._train_start = (time.time(), runner.iter)
        self._eta = None
        # mmengine logs "resumed epoch: N" at INFO, which a quiet console
        # hides; a resumed run starts past iteration 0
        cfg = getattr(runner, 'cfg', None) or {}
        if is_main_process() and runner.iter > 0 and cfg.get('resume'):
            print(f'Resumed from {cfg.get("load_from")} at epoch '
                  f'{runner.epoch} (iteration {runner.iter}); training '
                  f'continues with {self._epoch_name(runner)}.', flush=True)

    def before_train_epoch(self, runner) -> None:
        self._epoch_start = time.time()
        self._losses = []
        if self.tty and is_main_process():
            self._start_bar(self._epoch_name(runner),
                            self._length(runner.train_dataloader), False)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is not None:
            if hasattr(loss, 'detach'):  # a tensor that carries its graph
                loss = loss.detach()
            self._losses.append(float(loss))
        self._eta = self._run_eta(runner)
        if self._bar is not None:
            self._advance(self._fields(runner))

    def after_train_epoch(self, runner) -> None:
        if not is_main_process():
            return
        info = self._fields(runner)
        if self._bar is not None:
            self._stop_bar(info)  # the finished bar is the epoch's line
            return
        print(f'{self._epoch_name(runner)}  {info}  '
              f'{time.time() - self._epoch_start:.1f}s', flush=True)

    def _fields(self, runner) -> str:
        """``[epoch][iter/iters]  lr: ..  eta: ..  loss: ..`` as mmengine's
        ``LogProcessor`` writes them, for the iterations seen so far."""
        total = self._length(runner.train_dataloader)
        count = f'[{runner.epoch + 1}][{len(self._losses)}/' \
                f'{"?" if total is None else total}]'
        eta = ('-' if self._eta is None else
               str(datetime.timedelta(seconds=int(self._eta))))
        return (f'{count}  lr: {self._lr(runner)}  eta: {eta}  '
                f'{self._loss_text()}')

    def _run_eta(self, runner) -> Optional[float]:
        """Seconds left in the whole run after this iteration: mmengine's
        ``IterTimerHook`` estimate when it is there, else this run's own
        elapsed time per iteration times the iterations left."""
        hub = getattr(runner, 'message_hub', None)
        if hub is not None and 'eta' in hub.runtime_info:
            return float(hub.get_info('eta'))
        max_iters = getattr(runner, 'max_iters', None)
        if max_iters is None:
            return None
        start, start_iter = self._train_start
        done = runner.iter - start_iter + 1  # runner.iter: this one's index
        return (time.time() - start) / done * (max_iters - runner.iter - 1)

    def _epoch_name(self, runner) -> str:
        # during a training epoch runner.epoch counts the finished ones
        return f'epoch {runner.epoch + 1}/{runner.max_epochs}'

    def _loss_text(self) -> str:
        if not self._losses:
            return 'loss: -'
        return f'loss: {sum(self._losses) / len(self._losses):.4f}'

    @staticmethod
    def _lr(runner) -> str:
        try:
            lrs = runner.optim_wrapper.get_lr()
        except Exception:  # noqa: BLE001  (no optimizer: nothing to show)
            return '-'
        for name, values in lrs.items():
            if name.endswith('lr') and not name.endswith('base_lr'):
                return f'{values[0]:.4e}'  # LogProcessor's num_digits
        return '-'

    # -- validation and test ---------------------------------------------
    # (mmengine's Hook sends before_val_epoch / before_test_epoch here)
    def _before_epoch(self, runner, mode: str = 'train') -> None:
        if mode != 'train' and self.tty and is_main_process():
            loader = getattr(runner, f'{mode}_dataloader')
            self._start_bar(mode, self._length(loader), True)

    def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None,
                    mode: str = 'train') -> None:
        self._advance()

    def _evaluated(self, what: str, metrics: Optional[dict]) -> None:
        self._stop_bar()
        if is_main_process():
            self._print(f'{what}: {format_metrics(metrics or {}, self.keys)}')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._evaluated(f'val (epoch {runner.epoch})', metrics)

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._evaluated('test', metrics)
