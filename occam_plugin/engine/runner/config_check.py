"""The one check of a config and its ``--cfg-options``, shared by every entry
point (tools/train.py, tools/test.py, tools/demo.py, ``init_occam_model``,
``OccamInferencer``, the JTT / DFR tools).

``Config.merge_from_dict`` accepts any key: a typo'd one is added and
ignored, or fails deep inside torch, numpy or a model's constructor. Here,
before anything is built:

- :func:`check_option_keys` (before the merge): every option's top-level
  key is in the config or read by the Runner; a ``default_hooks.<name>.*``
  option names a hook the run has; a path does not go through a key the
  config lacks when a close or the same name sits nearby (``model.backnone``,
  or ``model.backbone`` of an ``LfFClassifier``, whose trunks live in
  ``model.biased_model``);
- :func:`check_config_values` (after the merge): dicts that take free keys
  hold only what their consumer reads (``env_cfg``, ``randomness``), the
  seed is an int, the optimizer's numbers are finite, a ResNet's
  ``out_indices`` are stages it has.

Both raise :class:`ConfigError` (a ``ValueError``) with one line naming the
key, the value and what was expected; the command-line tools turn it into
a ``SystemExit``.
"""
import difflib
import inspect
import math
from typing import Iterator, Mapping, Optional, Tuple

from mmengine.config import Config

__all__ = [
    'ConfigError', 'free_key_dicts', 'check_option_keys',
    'check_config_values', 'merge_cfg_options'
]


class ConfigError(ValueError):
    """A config key or value that a run would ignore or fail on."""


def _params(func, drop=()) -> Tuple[str, ...]:
    return tuple(
        name for name, p in inspect.signature(func).parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        and name not in ('self', *drop))


def free_key_dicts() -> dict:
    """Config dicts whose consumer takes any key, and the keys it reads
    (mmengine 0.10's ``Runner.setup_env`` / ``set_randomness``)."""
    from mmengine.runner import Runner
    from mmengine.utils.dl_utils import set_multi_processing
    return {
        # setup_env reads these with env_cfg.get(...)
        'env_cfg': ('cudnn_benchmark', 'mp_cfg', 'dist_cfg',
                    'resource_limit'),
        'env_cfg.mp_cfg': _params(set_multi_processing, ('distributed', )),
        'randomness': _params(Runner.set_randomness),
    }


#: the hooks mmengine's Runner adds to every run (``register_default_hooks``)
MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                          'param_scheduler', 'checkpoint')


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f' (did you mean {close[0]!r}?)' if close else ''


def _find_key(node, name: str, prefix: str) -> Iterator[str]:
    """The paths below ``node`` of the dicts that hold ``name``."""
    items = node.items() if isinstance(node, Mapping) else (
        enumerate(node) if isinstance(node, (list, tuple)) else ())
    for key, value in items:
        path = f'{prefix}.{key}'
        if isinstance(value, Mapping) and name in value:
            yield f'{path}.{name}'
        yield from _find_key(value, name, path)


def check_option_keys(cfg: Config, options: Mapping) -> None:
    """Refuse ``--cfg-options`` keys that the merge would add unread.

    Args:
        cfg (Config): The config before the options are merged.
        options (Mapping): ``{'a.b.c': value}``, as ``DictAction`` parses
            ``--cfg-options``.

    Raises:
        ConfigError: A top-level key that neither the config has nor the
            Runner reads, a ``default_hooks`` name the run has not, or a
            path through a missing key whose close match or namesake is
            elsewhere in the config (the message names where).
    """
    from .safe_runner import SafeRunner
    known = set(cfg.keys()) | set(SafeRunner.known_config_keys())
    where = cfg.filename or 'the config'
    for key in options:
        parts = key.split('.')
        if parts[0] not in known:
            close = difflib.get_close_matches(parts[0], sorted(known), n=1)
            raise ConfigError(
                f'--cfg-options {key}=...: unknown top-level key '
                f'{parts[0]!r}: {where} has no such key and the runner reads '
                'none.' + (f' Did you mean {close[0]!r}?' if close else ''))
        _check_path(cfg, key, parts, options, where)


def _check_path(cfg, key, parts, options, where) -> None:
    node = cfg
    for i, name in enumerate(parts):
        if not isinstance(node, (Mapping, Config)):
            return  # a list index, or a value the option replaces
        path = '.'.join(parts[:i + 1])
        if name in node:
            node = node[name]
            continue
        parent = '.'.join(parts[:i])
        last = i == len(parts) - 1
        typed = f'{path}.type' in options
        if parent == 'default_hooks':
            hooks = set(node)
            from .safe_runner import SafeRunner
            hooks |= set(SafeRunner.PLUGIN_DEFAULT_HOOKS)
            hooks |= set(SafeRunner.QUIET_CONSOLE_HOOKS)
            # a sub-option completes a hook of the run; a whole new hook
            # (with its type) or None for mmengine's default is fine
            if name not in hooks and ((not last and not typed) or (
                    last and options[key] is None and
                    name not in MMENGINE_DEFAULT_HOOKS)):
                raise ConfigError(
                    f'--cfg-options {key}=...: {path}: no such hook in the '
                    f'config{_hint(name, hooks | set(MMENGINE_DEFAULT_HOOKS))}'
                    f'; its hooks are {", ".join(sorted(hooks))}.')
            return
        if i == 0 or last or parent in free_key_dicts():
            # a top-level key the runner reads (checked above), a new
            # argument; free-key dicts: check_config_values
            return
        kind = node.get('type')
        if name in _init_params(kind):
            return  # an argument the model takes (data_preprocessor, ...)
        elsewhere = list(_find_key(node, name, parent))
        what = f'{parent} ({kind})' if isinstance(kind, str) else parent
        rest = '.'.join(parts[i + 1:])
        if elsewhere:
            raise ConfigError(
                f'--cfg-options {key}=...: {what} has no {name!r} in '
                f'{where}; it is at ' + ' and '.join(elsewhere) +
                f' (e.g. --cfg-options {elsewhere[0]}.{rest}=...).')
        close = difflib.get_close_matches(name, sorted(map(str, node)), n=1)
        if close and not typed:
            raise ConfigError(
                f'--cfg-options {key}=...: {what} has no {name!r} in '
                f'{where} (did you mean {parent}.{close[0]}.{rest}?).')
        return


def check_config_values(cfg: Config) -> None:
    """Check the merged config's values that would otherwise fail deep in
    numpy, torch or a model's constructor, or be ignored.

    Args:
        cfg (Config): The merged config.

    Raises:
        ConfigError: Names the key, the value and what was expected.
    """
    _check_free_keys(cfg)
    _check_randomness(cfg.get('randomness'))
    _check_optimizers(cfg.get('optim_wrapper'), 'optim_wrapper')
    if isinstance(cfg.get('model'), Mapping):
        _check_backbones(cfg['model'], 'model')


def _get(cfg, path: str):
    node = cfg
    for name in path.split('.'):
        if not isinstance(node, (Mapping, Config)) or name not in node:
            return None
        node = node[name]
    return node


def _check_free_keys(cfg) -> None:
    for path, reads in free_key_dicts().items():
        node = _get(cfg, path)
        if not isinstance(node, Mapping):
            continue
        for name in node:
            if name not in reads:
                raise ConfigError(
                    f'{path}.{name}: unknown key{_hint(name, reads)}; '
                    f'{path} is read for {", ".join(reads)} only.')


def _check_randomness(randomness) -> None:
    if not isinstance(randomness, Mapping):
        return
    seed = randomness.get('seed')
    if seed is not None and (isinstance(seed, bool)
                             or not isinstance(seed, int)):
        raise ConfigError(f'randomness.seed must be an int, got {seed!r}.')
    if seed is not None and not 0 <= seed < 2**32:  # numpy's seed range
        raise ConfigError('randomness.seed must be in [0, 2**32), got '
                          f'{seed!r}.')
    for name in ('deterministic', 'diff_rank_seed'):
        if name in randomness and not isinstance(randomness[name], bool):
            raise ConfigError(f'randomness.{name} must be True or False, '
                              f'got {randomness[name]!r}.')


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _check_optimizers(node, path: str) -> None:
    """Every ``optimizer`` dict under ``optim_wrapper`` (one, or one per
    wrapper of a multi-optimizer constructor)."""
    if not isinstance(node, Mapping):
        return
    optimizer = node.get('optimizer')
    if isinstance(optimizer, Mapping):
        where = f'{path}.optimizer'
        for name in ('lr', 'weight_decay', 'momentum', 'eps'):
            value = optimizer.get(name)
            if name in optimizer and not (_number(value) and value >= 0):
                raise ConfigError(
                    f'{where}.{name} must be a finite number >= 0, got '
                    f'{value!r}.')
        if 'betas' in optimizer:
            betas = optimizer['betas']
            if not (isinstance(betas, (list, tuple)) and len(betas) == 2
                    and all(_number(b) and 0 <= b < 1 for b in betas)):
                raise ConfigError(
                    f'{where}.betas must be two finite numbers in [0, 1) '
                    f'(e.g. "(0.9,0.999)"), got {betas!r}.')
    for name, value in node.items():
        if name != 'optimizer' and isinstance(value, Mapping):
            _check_optimizers(value, f'{path}.{name}')


def _model_class(type_) -> Optional[type]:
    """The class a model ``type`` names (mmpretrain's registry), or None."""
    from mmpretrain.registry import MODELS
    if isinstance(type_, type):
        return type_
    if not isinstance(type_, str):
        return None
    try:
        return MODELS.get(type_)
    except Exception:  # noqa: BLE001  (an unknown type: the build says)
        return None


def _init_params(type_) -> Tuple[str, ...]:
    klass = _model_class(type_)
    return _params(klass.__init__) if isinstance(klass, type) else ()


def _resnet_class(type_) -> Optional[type]:
    """The class of a backbone ``type`` when it is mmpretrain's ResNet (or
    a subclass: ResNetV1c, ResNetV1d, ResNet_CIFAR, ...)."""
    from mmpretrain.models.backbones import ResNet
    klass = _model_class(type_)
    return klass if isinstance(klass, type) and issubclass(klass, ResNet) \
        else None


def _check_backbones(node: Mapping, path: str) -> None:
    """A ResNet's ``out_indices`` are stages it has (else mmpretrain's bare
    ``assert max(out_indices) < num_stages``)."""
    klass = _resnet_class(node.get('type'))
    if klass is not None:
        # the first __init__ that names them (ResNetV1c passes **kwargs on)
        defaults = next(
            params for k in klass.__mro__ if '__init__' in vars(k)
            for params in [inspect.signature(k.__init__).parameters]
            if 'num_stages' in params and 'out_indices' in params)
        stages = node.get('num_stages', defaults['num_stages'].default)
        if isinstance(stages, bool) or not isinstance(stages, int) or \
                not 1 <= stages <= 4:
            raise ConfigError(f'{path}.num_stages must be 1, 2, 3 or 4 '
                              f'({klass.__name__}), got {stages!r}.')
        indices = node.get('out_indices', defaults['out_indices'].default)
        if isinstance(indices, int) and not isinstance(indices, bool):
            indices = (indices, )  # stays wrong for the model: say so below
            bad = True
        else:
            bad = not isinstance(indices, (list, tuple)) or not indices
        if bad or not all(
                isinstance(i, int) and not isinstance(i, bool)
                and 0 <= i < stages for i in indices):
            raise ConfigError(
                f'{path}.out_indices={node.get("out_indices")!r}: '
                f'{klass.__name__} with num_stages={stages} takes a '
                f'non-empty tuple of stage indices in 0..{stages - 1} '
                f'(e.g. "({stages - 1},)").')
    for name, value in node.items():
        if isinstance(value, Mapping):
            _check_backbones(value, f'{path}.{name}')
        elif isinstance(value, (list, tuple)):
            for k, item in enumerate(value):
                if isinstance(item, Mapping):
                    _check_backbones(item, f'{path}.{name}.{k}')


def merge_cfg_options(cfg: Config, options: Optional[Mapping]) -> Config:
    """Check ``options``' keys, merge them into ``cfg`` (in place) and check
    the merged values: what every entry point does with ``--cfg-options``.

    Args:
        cfg (Config): The loaded config.
        options (Mapping, optional): ``--cfg-options`` as ``DictAction``
            parses them; None or empty merges nothing (the values are still
            checked).

    Returns:
        Config: ``cfg``, merged.

    Raises:
        ConfigError: See :func:`check_option_keys` and
            :func:`check_config_values`.
    """
    if options:
        check_option_keys(cfg, options)
        cfg.merge_from_dict(dict(options))
    check_config_values(cfg)
    return cfg
