"""One training run per work dir: an advisory lock held for the run's life.

Two ``tools/train.py`` runs into one work dir would overwrite each other's
``epoch_N.pth`` and delete each other's best checkpoint. The first run holds
``fcntl.flock`` on ``<work_dir>/.occam_lock`` (which records its pid, host
and start time) until it ends; a second one stops at once with a message
naming the holder. The kernel drops the lock when its holder dies (even by
SIGKILL), so the lock of a dead run is taken over by the next one, which
says so. flock is not reliable across machines on network file systems
(NFS, SMB): two machines writing into one network folder are not guarded.
"""
import contextlib
import datetime
import errno
import json
import os
import os.path as osp
import socket
from typing import Dict, Iterator, Optional

from ...fileio import drop_symlink

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock is a no-op there
    fcntl = None

__all__ = ['WorkDirError', 'WorkDirBusyError', 'WorkDirLock', 'hold_work_dir']

#: the lock file's name in the work dir (hidden: no checkpoint listing
#: shows it)
LOCK_NAME = '.occam_lock'


class WorkDirError(RuntimeError):
    """A work dir a training run cannot hold (its lock cannot be created).

    The message names the folder and says what to do.
    """


class WorkDirBusyError(WorkDirError):
    """Another live process holds the lock of the work dir."""


def _describe(holder: Dict) -> str:
    if not holder:
        return 'a process that had not yet written its pid'
    return (f'pid {holder.get("pid")} on host {holder.get("host")!r} since '
            f'{holder.get("since")}')


def _read_holder(fd: int) -> Dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode('utf-8', 'replace')
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


class WorkDirLock:
    """The advisory lock of a work dir (``<work_dir>/.occam_lock``).

    :meth:`acquire` takes it without waiting; :meth:`release` (or the end
    of the process) gives it back. A released lock removes its file, so a
    lock file found later names a run that died holding it.

    Args:
        work_dir (str): The folder to lock (created if missing).
    """

    def __init__(self, work_dir: str):
        self.work_dir = osp.abspath(work_dir)
        self.path = osp.join(self.work_dir, LOCK_NAME)
        self._fd: Optional[int] = None
        #: what the lock file said when this process took it over from a
        #: run that died holding it (None if the lock was free)
        self.took_over: Optional[Dict] = None
        #: whether a symlink found at the lock file's name was removed
        self.replaced_link = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def note(self) -> Optional[str]:
        """A message about a lock taken over from a dead run (or a symlink
        at its name, replaced), or None."""
        if self.replaced_link and not self.took_over:
            return (f'work-dir lock {self.path}: it was a symbolic link; it '
                    'is replaced by a lock file (the file it pointed to is '
                    'left as it was).')
        if not self.took_over:
            return None
        holder = self.took_over
        note = (f'work-dir lock {self.path}: took it over from '
                f'{_describe(holder)}, which no longer holds it (it ended '
                'without releasing it: killed or crashed).')
        if holder.get('host') not in (None, socket.gethostname()):
            note += (' That run was on another machine: if it still writes '
                     'into this folder (a network folder, where flock does '
                     'not reach across machines), stop this run.')
        return note

    def acquire(self) -> 'WorkDirLock':
        """Take the lock; raise :class:`WorkDirBusyError` naming the holder
        if another process holds it."""
        if self.held or fcntl is None:
            return self
        while True:
            try:
                os.makedirs(self.work_dir, exist_ok=True)
                # never through a symlink planted at the name: its target
                # (outside the work dir, maybe) would get the lock record
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT |
                             getattr(os, 'O_NOFOLLOW', 0), 0o644)
            except OSError as err:
                if err.errno == errno.ELOOP and drop_symlink(self.path):
                    self.replaced_link = True
                    continue  # the link is gone; a lock file of our own
                raise WorkDirError(
                    f'cannot create the work-dir lock {self.path!r} '
                    f'({type(err).__name__}: {err.strerror or err}): a '
                    'training run needs a writable --work-dir.') from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _read_holder(fd)
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise WorkDirBusyError(
                    f'the work dir {self.work_dir!r} is in use by another '
                    f'training run: {_describe(holder)} (lock file '
                    f'{self.path}). Wait for it to end, or train into '
                    'another --work-dir.') from None
            # the previous holder may have removed the file between our open
            # and our flock: then we hold a lock on a file nobody sees
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = _read_holder(fd)
        self.took_over = holder or None
        record = dict(pid=os.getpid(), host=socket.gethostname(),
                      since=datetime.datetime.now().isoformat(
                          timespec='seconds'))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode('utf-8'))
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and give the lock back."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # remove while still holding it, so no one locks a file about to go
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        os.close(fd)


#: locks this process holds, by work dir (acquiring twice is a no-op)
_HELD: Dict[str, list] = {}


@contextlib.contextmanager
def hold_work_dir(work_dir: str) -> Iterator[WorkDirLock]:
    """Hold the work dir's lock for the ``with`` block (re-entrant within a
    process: ``tools/train.py`` takes it before the Runner is built,
    ``SafeRunner.train`` again)."""
    key = osp.abspath(work_dir)
    if key in _HELD:
        _HELD[key][1] += 1
    else:
        _HELD[key] = [WorkDirLock(key).acquire(), 1]
    try:
        yield _HELD[key][0]
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            _HELD.pop(key)[0].release()
