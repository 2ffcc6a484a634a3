"""What a work dir holds: its checkpoints, by name, and unfinished saves.

Shared by ``SafeRunner`` and the hooks that keep the work-dir rules
(``WorkDirGuardHook``, ``PendingValidationHook``).
"""
import os
import os.path as osp
import re
from typing import List, Optional, Tuple

from ...fileio import pid_alive

__all__ = [
    'checkpoint_files', 'latest_checkpoint', 'step_of', 'sweep_partial_saves',
    'RESUMABLE'
]


#: ``epoch_3.pth`` / ``iter_100.pth``: checkpoints a run can resume from
RESUMABLE = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
#: any checkpoint name that carries its step (``best_acc_epoch_3.pth`` too)
STEPPED = re.compile(r'(?:^|_)(epoch|iter)_(\d+)\.pth$')
#: the temporary name a checkpoint is written under before its rename:
#: ``.<name>.pth.partial-<writer pid>``
PARTIAL = re.compile(r'^\..+\.pth\.partial-(\d+)$')


def checkpoint_files(folder: str) -> List[str]:
    """Names of the checkpoint files in ``folder`` (sorted).

    Checkpoints are ``*.pth`` files and mmengine's ``last_checkpoint`` note;
    temporary files of an interrupted save are not.
    """
    if not osp.isdir(folder):
        return []
    return sorted(
        name for name in os.listdir(folder)
        if osp.isfile(osp.join(folder, name))
        and (name.endswith('.pth') or name == 'last_checkpoint'))


def latest_checkpoint(folder: str) -> Optional[str]:
    """The resumable checkpoint of ``folder`` with the highest step.

    Found by name (``epoch_N.pth``, else ``iter_N.pth``), not from the
    ``last_checkpoint`` note, which mmengine writes with an absolute path
    (wrong in a copied or moved work dir) and after the checkpoint itself
    (stale if the run was killed in between). Returns None if there is none.
    """
    found = {}
    for name in checkpoint_files(folder):
        match = RESUMABLE.match(name)
        if match:
            found[(match.group(1) == 'epoch', int(match.group(2)))] = name
    if not found:
        return None
    return osp.join(folder, found[max(found)])


def step_of(name: str) -> Optional[Tuple[str, int]]:
    """``('epoch', 3)`` for ``epoch_3.pth`` / ``best_acc_epoch_3.pth``."""
    match = STEPPED.search(name)
    return (match.group(1), int(match.group(2))) if match else None


def sweep_partial_saves(folder: str) -> Tuple[List[str], List[str]]:
    """Remove the unfinished saves of ``folder`` whose writer is dead.

    A ``.<name>.pth.partial-<pid>`` whose process still runs on this host is
    a save in progress (of a run that holds no work-dir lock, or runs on
    another machine) and is kept.

    Returns:
        tuple[list, list]: The names removed and the names kept.
    """
    removed, kept = [], []
    for name in sorted(os.listdir(folder)) if osp.isdir(folder) else []:
        match = PARTIAL.match(name)
        if not match:
            continue
        if pid_alive(int(match.group(1))) and \
                int(match.group(1)) != os.getpid():
            kept.append(name)
            continue
        try:
            os.remove(osp.join(folder, name))
        except FileNotFoundError:  # its writer renamed or removed it
            continue
        removed.append(name)
    return removed, kept
