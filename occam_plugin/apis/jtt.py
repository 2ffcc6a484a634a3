"""JTT, "Just Train Twice" (Liu et al., ICML 2021), as two ordinary runs.

1. **Identification**: the config's model trained for ``T`` epochs
   (``<work_dir>/identification/``, a normal training run: it resumes from
   its latest checkpoint), then run over the training set with the
   evaluation pipeline; the samples it misclassifies are the error set,
   written to ``<work_dir>/error_set.json`` (indices, image paths, ``T``
   and the checkpoint; :mod:`occam_plugin.datasets.error_set`).
2. **Upsampled run**: the config with its training set wrapped in
   ``UpsampledDataset(error_set, lambda_up)``, written as
   ``<work_dir>/upsampled.py`` (a config ``tools/train.py`` trains as it
   is) and trained into ``<work_dir>/upsampled/``.

:func:`run_jtt` runs what is left of both: a finished identification
(``error_set.json`` there) is reused, an unfinished stage resumes from its
latest checkpoint, a finished job (``jtt_result.json``) is not run again,
and no file of a stage is written twice (``OutputClaims``: a file already
there is refused unless it is what this run would write). The settings of
the first command (``jtt_settings.json``) must match every later one.
"""
import copy
import json
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config

from ..fileio import OutputClaims, atomic_path, read_json, write_json
from .offline import load_config as load_stage_config

__all__ = [
    'resolve_settings', 'identify', 'check_error_set', 'upsampled_config',
    'config_diff', 'check_same_config', 'final_checkpoint', 'run_jtt'
]

#: the sub work dirs and files of a JTT work dir
ID_DIR, FINAL_DIR = 'identification', 'upsampled'
ERROR_SET, FINAL_CONFIG = 'error_set.json', 'upsampled.py'
SETTINGS, RESULT = 'jtt_settings.json', 'jtt_result.json'


def _log(msg: str) -> None:
    print(f'[jtt] {msg}', flush=True)


def resolve_settings(cfg: Config, identification_epochs: Optional[int],
                     lambda_up: Optional[int]) -> dict:
    """``T`` and ``lambda_up``: the command line, else the config's
    ``jtt = dict(identification_epochs=..., lambda_up=...)``."""
    jtt = dict(cfg.get('jtt') or {})
    unknown = set(jtt) - {'identification_epochs', 'lambda_up'}
    if unknown:
        raise SystemExit(f'error: {cfg.filename}: jtt has unknown keys '
                         f'{sorted(unknown)}; expected identification_epochs'
                         ' and lambda_up.')
    out = dict(
        identification_epochs=(identification_epochs if identification_epochs
                               is not None else
                               jtt.get('identification_epochs')),
        lambda_up=lambda_up if lambda_up is not None else jtt.get(
            'lambda_up'))
    for key, flag in (('identification_epochs', '--epochs-id'),
                      ('lambda_up', '--lambda-up')):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < 1:
            raise SystemExit(
                f'error: JTT needs {key} as an integer >= 1 (got {value!r}): '
                f'give {flag} N, or jtt = dict({key}=N) in the config.')
    return out


def _stage_done_or_resume(cfg: Config, work_dir: str) -> None:
    """Resume ``cfg`` from the latest checkpoint of ``work_dir`` if any."""
    from ..engine.runner import latest_checkpoint
    latest = latest_checkpoint(work_dir)
    cfg.work_dir = work_dir
    if latest is not None:
        _log(f'resuming {work_dir} from {osp.basename(latest)}')
        cfg.resume, cfg.load_from = True, None
    else:
        cfg.resume, cfg.load_from = False, None


def _train(cfg: Config) -> None:
    from .. import cli
    cli.fix_dataloaders(cfg)
    cli.launch(cfg, 'train')


def identify(cfg: Config, checkpoint: str, device: Optional[str] = None,
             **provenance) -> dict:
    """The error set of ``checkpoint`` on the training set of ``cfg``
    (evaluation pipeline, every exit computed on an OccamNet; the
    prediction is the one the model makes at inference)."""
    from ..datasets.error_set import error_set_record
    from .model import init_occam_model
    from .offline import (build_eval_loader, default_device,
                          eval_dataset_cfg, predictions)
    model = init_occam_model(cfg, checkpoint,
                             device=device or default_device())
    ds_cfg = eval_dataset_cfg(cfg, 'train')
    loader = build_eval_loader(cfg, ds_cfg)
    idx, pred = predictions(model, loader)
    return error_set_record(loader.dataset, idx.tolist(), pred.tolist(),
                            checkpoint=osp.abspath(checkpoint), **provenance)


def check_error_set(error_set: str, cfg: Config) -> None:
    """Raise ValueError unless ``error_set`` was made on the training set of
    ``cfg`` (its size, images and annotation digest; the message names both
    data roots and ann files): a reused error set of another data_root
    would upsample other samples.

    Args:
        error_set (str): The ``error_set.json`` to reuse.
        cfg (Config): The config whose training set is upsampled.
    """
    from ..datasets.error_set import read_error_set
    from .offline import build_eval_loader, eval_dataset_cfg
    dataset = build_eval_loader(cfg, eval_dataset_cfg(cfg, 'train')).dataset
    read_error_set(error_set, dataset)


def upsampled_config(cfg: Config, error_set: str, lambda_up: int,
                     work_dir: str) -> Config:
    """``cfg`` training on ``UpsampledDataset(error_set, lambda_up)`` into
    ``work_dir``."""
    cfg = copy.deepcopy(cfg)
    cfg.pop('jtt', None)
    train = cfg.train_dataloader
    train.dataset = dict(type='UpsampledDataset', dataset=train.dataset,
                         error_set=osp.abspath(error_set),
                         lambda_up=lambda_up)
    cfg.work_dir = work_dir
    cfg.resume, cfg.load_from = False, None
    return cfg


def _flat(d, prefix=''):
    """``{'a.b': v}`` of nested dicts (lists and other values as leaves)."""
    out = {}
    for k, v in d.items():
        key = f'{prefix}{k}'
        if isinstance(v, dict):
            out.update(_flat(v, key + '.'))
        else:
            out[key] = v
    return out


def config_diff(before: str, after: str, limit: int = 8) -> list:
    """The keys whose values differ between two config texts, as
    ``'key: was -> now'`` lines (dotted keys, sorted; at most ``limit``,
    then a count of the others).

    Args:
        before (str): The text of the config written earlier.
        after (str): The text this run would write.
        limit (int): Keys listed in full. Defaults to 8.
    """
    was = _flat(Config.fromstring(before, '.py').to_dict())
    now = _flat(Config.fromstring(after, '.py').to_dict())
    keys = sorted(k for k in set(was) | set(now)
                  if was.get(k, '<unset>') != now.get(k, '<unset>'))
    lines = [f'{k}: {was.get(k, "<unset>")!r} -> {now.get(k, "<unset>")!r}'
             for k in keys[:limit]]
    if len(keys) > limit:
        lines.append(f'... and {len(keys) - limit} more')
    return lines


def check_same_config(path: str, text: str) -> None:
    """SystemExit, naming the changed keys, when ``path`` (the upsampled
    config an earlier command of this JTT run wrote) holds another config
    than ``text``: the config (or a file it inherits) was edited between
    the stages, and the stages of two configs are not mixed.

    Args:
        path (str): ``<work_dir>/upsampled.py``.
        text (str): The config this command would write there.
    """
    if not osp.isfile(path):
        return
    with open(path, encoding='utf-8') as f:
        before = f.read()
    if before == text:
        return
    try:
        changed = config_diff(before, text)
    except Exception as err:  # unreadable: the refusal still says why
        changed = [f'(the file could not be read back: {err})']
    raise SystemExit(
        f'error: {path} was written by an earlier command of this JTT run '
        'from another config: the config (or a file it inherits) changed '
        'since. Changed keys (was -> now): ' + '; '.join(changed or [
            '(none: only the text differs)'])
        + '. Restore the config to finish this run, or start over in a new '
        '--work-dir (this folder is left as it is).')


def final_checkpoint(stage: Config, work_dir: str) -> dict:
    """The upsampled run's checkpoint JTT reports: the one its model
    selection rule chose (``ModelSelectionCheckpointHook``, read from its
    ``model_selection.json``), else the last one.

    Args:
        stage (Config): The upsampled run's config.
        work_dir (str): Its work dir.

    Returns:
        dict: ``final_checkpoint`` (path), ``chosen_by`` (which rule, or
        ``'the last epoch'``), ``last_checkpoint`` (path) and, with a rule,
        ``model_selection`` (its ``best`` entry).
    """
    from ..engine.hooks.model_selection_checkpoint_hook import (
        SELECTION_FILE)
    from ..engine.runner import latest_checkpoint
    last = latest_checkpoint(work_dir)
    out = dict(final_checkpoint=last, chosen_by='the last epoch',
               last_checkpoint=last)
    hook = (stage.get('default_hooks') or {}).get('checkpoint') or {}
    if hook.get('type') != 'ModelSelectionCheckpointHook':
        return out
    record_file = osp.join(work_dir, SELECTION_FILE)
    best = (read_json(record_file).get('best')
            if osp.isfile(record_file) else None)
    path = best and osp.join(work_dir, best['checkpoint'])
    if not path or not osp.isfile(path):
        raise SystemExit(
            f'error: the upsampled run selects its checkpoint by '
            f"selection={hook.get('selection')!r}, but {record_file} names "
            f'no checkpoint that exists ({path or "none chosen"}); JTT '
            'reports the chosen one. Check that the run validated (the rule '
            'chooses at each validation), or '
            'drop the rule to report the last epoch.')
    rule = read_json(record_file)
    return dict(out, final_checkpoint=path,
                chosen_by=f"model selection rule {rule.get('rule')!r} "
                f"(the best {rule.get('metric')})",
                model_selection=best)


def _write_once(claims: OutputClaims, path: str, text: str,
                what: str) -> None:
    """Write ``text`` to ``path`` unless it holds it already; a file with
    other contents is refused (a finished stage is never rewritten)."""
    if osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    claims.claim(path, what)
    with atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)


def run_jtt(config: str, work_dir: str,
            identification_epochs: Optional[int] = None,
            lambda_up: Optional[int] = None,
            cfg_options: Optional[dict] = None,
            identification_config: Optional[str] = None,
            stop_after: Optional[str] = None,
            device: Optional[str] = None) -> dict:
    """Run (or finish) both JTT stages into ``work_dir``.

    Args:
        config (str): The config of the final model (and of the
            identification model unless ``identification_config``).
        work_dir (str): The JTT folder (sub work dirs ``identification/``
            and ``upsampled/``).
        identification_epochs (int, optional): ``T``; else ``jtt.
            identification_epochs`` of the config.
        lambda_up (int, optional): Extra copies of each error sample; else
            ``jtt.lambda_up``.
        cfg_options (dict, optional): ``--cfg-options`` of both stages.
        identification_config (str, optional): Another config for the
            identification model (e.g. a plain ResNet identifying errors
            for an OccamNet). Its training set must be the same.
        stop_after (str, optional): ``'identification'``: end once the
            error set is written.
        device (str, optional): Where the identification inference runs.

    Returns:
        dict: What ``jtt_result.json`` holds (or, with ``stop_after``, the
        error set's summary); its ``final_checkpoint`` is the one the
        upsampled run's model selection rule chose, when it has one
        (:func:`final_checkpoint`).
    """
    from ..engine.runner import hold_work_dir
    work_dir = osp.abspath(work_dir)
    cfg = load_stage_config(config, cfg_options)
    settings = resolve_settings(cfg, identification_epochs, lambda_up)
    id_cfg = (load_stage_config(identification_config, cfg_options)
              if identification_config else copy.deepcopy(cfg))
    id_cfg.pop('jtt', None)
    settings.update(config=osp.abspath(config),
                    identification_config=osp.abspath(
                        identification_config or config),
                    cfg_options=dict(cfg_options or {}))
    settings = json.loads(json.dumps(settings))  # as read back
    paths = {k: osp.join(work_dir, v) for k, v in dict(
        id_dir=ID_DIR, final_dir=FINAL_DIR, error_set=ERROR_SET,
        final_config=FINAL_CONFIG, settings=SETTINGS,
        result=RESULT).items()}
    claims = OutputClaims(False, 'another --work-dir')
    os.makedirs(work_dir, exist_ok=True)
    with hold_work_dir(work_dir):  # one JTT command per folder
        if osp.isfile(paths['settings']):
            before = read_json(paths['settings'])
            if before != settings:
                diff = {k: (before.get(k), settings.get(k))
                        for k in set(before) | set(settings)
                        if before.get(k) != settings.get(k)}
                raise SystemExit(
                    f'error: {work_dir} holds a JTT run with other settings '
                    f'(was, now: {diff}); its stages are not mixed with '
                    'this one. Rerun with the same settings to finish it, '
                    'or use another --work-dir.')
        else:
            write_json(claims.claim(paths['settings'], 'JTT settings'),
                       settings, indent=2, sort_keys=True)
        if osp.isfile(paths['result']):
            _log(f'both stages finished already ({paths["result"]}); '
                 'nothing to do.')
            return read_json(paths['result'])

        # ---- stage 1: identification
        T = settings['identification_epochs']
        if osp.isfile(paths['error_set']):
            _log(f'identification finished: reusing {paths["error_set"]}')
            # the training set it was made on, checked before stage 2 runs
            check_error_set(paths['error_set'], cfg)
        else:
            checkpoint = osp.join(paths['id_dir'], f'epoch_{T}.pth')
            if not osp.isfile(checkpoint):
                stage = copy.deepcopy(id_cfg)
                stage.train_cfg.max_epochs = T
                stage.train_cfg.val_interval = min(
                    stage.train_cfg.get('val_interval', 1), T)
                _stage_done_or_resume(stage, paths['id_dir'])
                _log(f'identification: {T} epoch(s) into {paths["id_dir"]}')
                _train(stage)
            if not osp.isfile(checkpoint):
                raise SystemExit(
                    f'error: the identification run ended without '
                    f'{checkpoint}; JTT needs the model of epoch {T} '
                    '(keep default_hooks.checkpoint.save_last=True).')
            record = identify(id_cfg, checkpoint, device,
                              identification_epochs=T,
                              config=settings['identification_config'])
            write_json(claims.claim(paths['error_set'], 'the error set'),
                       record, indent=1)
            _log(f'error set: {record["num_errors"]} of '
                 f'{record["dataset"]["num_samples"]} training samples '
                 f'misclassified -> {paths["error_set"]}')
        summary = read_json(paths['error_set'])
        if stop_after == 'identification':
            return {k: v for k, v in summary.items()
                    if k not in ('indices', 'img_paths')}

        # ---- stage 2: the upsampled run
        final = upsampled_config(cfg, paths['error_set'],
                                 settings['lambda_up'], paths['final_dir'])
        check_same_config(paths['final_config'], final.pretty_text)
        _write_once(claims, paths['final_config'], final.pretty_text,
                    'the upsampled-run config')
        stage = Config.fromfile(paths['final_config'])
        _stage_done_or_resume(stage, paths['final_dir'])
        _log(f'upsampled run (lambda_up={settings["lambda_up"]}, '
             f'{summary["num_errors"]} error samples) into '
             f'{paths["final_dir"]}')
        _train(stage)
        chosen = final_checkpoint(stage, paths['final_dir'])
        _log(f'final checkpoint: {chosen["final_checkpoint"]} '
             f'({chosen["chosen_by"]})')
        result = dict(settings,
                      error_set=paths['error_set'],
                      num_errors=summary['num_errors'],
                      identification_checkpoint=summary['checkpoint'],
                      upsampled_config=paths['final_config'],
                      upsampled_work_dir=paths['final_dir'],
                      **chosen)
        write_json(claims.claim(paths['result'], 'the JTT result'), result,
                   indent=2, sort_keys=True)
        _log(f'done: {paths["result"]}')
        return result
