"""How a checkpoint is read and loaded into a model.

Read with ``torch.load(weights_only=True)`` whatever mmengine's default
(the allow-list of pickle globals: ``occam_plugin.safe_globals``), loaded
strictly with every key that does not fit listed, or partially on purpose.
``SafeRunner.load_checkpoint``, the inference API and the tools load through
these.
"""
import io
import pickle
import re
from collections import OrderedDict

import torch
from mmengine.runner.checkpoint import load_state_dict

from ...safe_globals import register_safe_globals

__all__ = [
    'CheckpointError', 'read_checkpoint', 'load_state_partially',
    'load_state_strictly', 'TOOLS_PARTIAL_HINT'
]

# importing this module (as `import occam_plugin` does) makes mmengine
# checkpoints loadable with torch.load(weights_only=True), so `--resume`
# works on torch >= 2.6
register_safe_globals()


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded, or a work dir that would lose one.

    The message names the file or folder and says what to do.
    """


def read_checkpoint(filename: str, map_location='cpu') -> dict:
    """``torch.load(weights_only=True)`` of a checkpoint (a local path, or a
    URI that ``mmengine.fileio.get`` reads), with errors that name the file
    (missing, truncated, corrupt, a global outside the allow-list, not a
    dict). Explicit, so the guarantee does not depend on the mmengine
    version (mmengine's own loader passes ``weights_only=False`` on its
    main branch)."""
    try:
        if '://' in str(filename):
            from mmengine.fileio import get
            source = io.BytesIO(get(filename))
        else:
            source = filename
        checkpoint = torch.load(source, map_location=map_location,
                                weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(
            f'checkpoint {filename!r} does not exist.') from err
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else ''
        if 'weights only' in str(err).lower() or \
                'weights_only' in str(err).lower():
            raise CheckpointError(
                f'checkpoint {filename!r} was refused: it holds objects '
                "outside the weights-only allow-list (torch.load("
                f"weights_only=True): {first}). It was not written by "
                'mmengine / occam_plugin or was crafted to run code; it is '
                'not loaded. Use a checkpoint you trust.') from err
        raise CheckpointError(
            f'checkpoint {filename!r} cannot be read: it is truncated, '
            f'corrupt or not a checkpoint ({type(err).__name__}: {first}). '
            'Use another checkpoint.') from err
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else ''
        raise CheckpointError(
            f'checkpoint {filename!r} cannot be read: it is truncated, '
            f'corrupt or not a checkpoint ({type(err).__name__}: {first}). '
            'Use another checkpoint.') from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'checkpoint {filename!r} holds a {type(checkpoint).__name__}, '
            'expected a dict with a state_dict.')
    return checkpoint


def _revised_state_dict(checkpoint: dict, revise_keys: list) -> OrderedDict:
    state_dict = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state_dict, '_metadata', OrderedDict())
    for pattern, repl in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, repl, k), v) for k, v in state_dict.items())
    state_dict._metadata = metadata
    return state_dict


def load_state_partially(model, checkpoint: dict,
                         revise_keys: list = [(r'^module\.', '')],
                         logger=None) -> None:
    """Load the keys of ``checkpoint`` that fit ``model`` (mmengine's public
    ``load_state_dict(strict=False)``: missing, unexpected and mis-shaped
    keys are skipped and listed in a warning)."""
    load_state_dict(model, _revised_state_dict(checkpoint, revise_keys),
                    strict=False, logger=logger)


#: how a user of the tools loads a checkpoint partially, on purpose
TOOLS_PARTIAL_HINT = ('pass --non-strict (or set strict_load=False) to load '
                      'the matching keys only.')


def load_state_strictly(model, checkpoint: dict, filename: str,
                        revise_keys: list = [(r'^module\.', '')],
                        partial_hint: str = TOOLS_PARTIAL_HINT) -> None:
    """``model.load_state_dict(strict=True)`` that lists every key that does
    not fit.

    Raises :class:`CheckpointError` naming ``filename`` and the missing,
    unexpected or mis-shaped keys; the message ends with ``partial_hint``
    (how the caller's user loads partially on purpose). BatchNorm's
    ``num_batches_tracked``, which checkpoints of old torch versions lack,
    keeps the model's value.
    """
    state_dict = _revised_state_dict(checkpoint, revise_keys)
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    for key in missing:
        if key.endswith('num_batches_tracked'):
            state_dict[key] = own[key]
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in own]
    hint = f' It was written for another model or config; {partial_hint}'

    def listed(keys):
        return (f'{len(keys)} ({", ".join(keys[:8])}'
                f'{", ..." if len(keys) > 8 else ""})')

    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:  # missing / unexpected / mis-shaped keys
        if missing or unexpected:
            raise CheckpointError(
                f'checkpoint {filename!r} does not fit '
                f'{type(model).__name__}: missing keys {listed(missing)}; '
                f'unexpected keys {listed(unexpected)}.{hint}') from err
        raise CheckpointError(
            f'checkpoint {filename!r} does not fit '
            f'{type(model).__name__}: {err}.{hint}') from err
