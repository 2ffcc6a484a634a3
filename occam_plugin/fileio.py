"""One way to write a file or a folder whole or not at all, and one rule for
what a tool may write over, for every writer we own.

* :func:`atomic_path` writes one file under a temporary name and renames it
  over the target on success (checkpoints, metrics files, JSON);
  :func:`write_json` / :func:`write_text` are that for a JSON document or a
  text. A symlink planted at the target is replaced, never written through
  (the rename replaces the link itself), and a failed write (a full disk,
  torch's ``inline_container.cc`` errors) is one :class:`OSError` naming
  the file, with no temporary file left behind.
* :func:`atomic_folder` does the same for a folder of files (the images of a
  generated data set), whole or file by file into a folder already there.
* :func:`temp_path`, :func:`remove_stale_temps` and :func:`folder_lock` are
  the transaction layer of data generators: temporary names that carry host
  and pid, so the temps of a killed writer are recognised and removed by the
  next one, and an exclusive lock on the data folder while it is written.
* :class:`OutputClaims` / :func:`refuse_overwrite`: what a tool may replace.
"""
import contextlib
import errno
import json
import os
import os.path as osp
import re
import shutil
import socket
from typing import Callable, Iterator, List, Optional, Union

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

__all__ = [
    'write_failure', 'drop_symlink', 'atomic_path', 'write_json', 'write_text',
    'open_for_writing', 'suffixed_temp', 'read_json', 'temp_path', 'pid_alive',
    'remove_stale_temps', 'atomic_folder', 'folder_lock', 'OutputClaims',
    'refuse_overwrite'
]


#: below this many free bytes a failed write is reported as a full disk
_NEARLY_FULL = 64 * 2**20


def write_failure(err: BaseException, path: str) -> Optional[OSError]:
    """The :class:`OSError` to raise for a failed write of ``path``, or None
    when ``err`` is not one (a bug, KeyboardInterrupt: raised as it is).

    A full disk reads ``no space left on device writing <path>`` whether it
    came as ``OSError(ENOSPC)`` or as torch's ``RuntimeError`` from
    ``inline_container.cc`` (which carries no errno: the free space of the
    folder tells).

    Args:
        err (BaseException): What the writer raised.
        path (str): The file that was being written (named in the message).
    """
    if isinstance(err, OSError):
        code, why = err.errno, err.strerror or str(err)
    elif isinstance(err, RuntimeError) and any(
            s in str(err) for s in ('inline_container', 'PytorchStreamWriter',
                                    'file write failed')):
        code, why = None, str(err).splitlines()[0] if str(err) else ''
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(osp.dirname(osp.abspath(path))).free
            if free < _NEARLY_FULL:
                code = errno.ENOSPC
    else:
        return None
    if code in (errno.ENOSPC, errno.EDQUOT):
        failure = OSError(f'no space left on device writing {path!r} '
                          f'({why}); free some space, or write elsewhere. '
                          'Nothing was left half-written.')
    else:
        failure = OSError(f'writing {path!r} failed ({why}); is the device '
                          'full or read-only? Nothing was left '
                          'half-written.')
    failure.errno = code  # one line, without the "[Errno N]" prefix
    return failure


def drop_symlink(path: str) -> bool:
    """Remove ``path`` if it is a symbolic link (the link, not its target),
    so that a writer that opens ``path`` (mmengine's ``last_checkpoint``)
    creates a file of its own instead of writing through the link. Returns
    whether a link was removed.

    Args:
        path (str): The file about to be written.
    """
    if not osp.islink(path):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


@contextlib.contextmanager
def atomic_path(path: Union[str, Callable[[str], str]],
                tmp: Optional[str] = None, fsync: bool = False,
                name: Optional[str] = None) -> Iterator[str]:
    """Yield a temporary path to write; rename it over ``path`` on success.

    On any exception (KeyboardInterrupt too) the temporary file is removed
    and ``path`` is left as it was, so a reader never sees half a file and a
    failed write never costs the previous one. A symlink at ``path`` is
    replaced by the file (its target is untouched), and one at the
    temporary name is removed first, so no write follows a link. A failed
    write raises the :class:`OSError` of :func:`write_failure` (naming
    ``path``).

    Args:
        path (str | callable): The file to (re)write; or a function of the
            written temporary file that returns it (a name that carries the
            file's hash), which then needs ``tmp``.
        tmp (str, optional): The temporary name, beside ``path`` (same file
            system, so the rename is atomic). Defaults to
            ``<path>.partial-<pid>``.
        fsync (bool): Flush the written file to disk before the rename (for
            checkpoints, which must survive a power loss as well).
        name (str, optional): The file as named in errors. Defaults to
            ``path`` (``tmp`` when ``path`` is a function).
    """
    if tmp is None:
        tmp = f'{path}.partial-{os.getpid()}'
    name = name or (tmp if callable(path) else path)
    try:
        if osp.lexists(tmp):  # ours from before, or a planted link
            os.unlink(tmp)
        yield tmp
        if fsync:
            with open(tmp, 'rb') as f:
                os.fsync(f.fileno())
        os.replace(tmp, path(tmp) if callable(path) else path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        failure = write_failure(err, name)
        if failure is not None:
            raise failure from err
        raise


def write_json(path: str, obj, tmp: Optional[str] = None, **kwargs) -> None:
    """Write ``obj`` as JSON to ``path`` through :func:`atomic_path`.

    Args:
        path (str): The file to (re)write.
        obj: What :func:`json.dump` writes.
        tmp (str, optional): The temporary name (see :func:`atomic_path`).
        **kwargs: Passed to :func:`json.dump` (``indent``, ``sort_keys``).
    """
    with atomic_path(path, tmp) as tmp_file, \
            open(tmp_file, 'w', encoding='utf-8') as f:
        json.dump(obj, f, **kwargs)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`.

    Args:
        path (str): The file to (re)write.
        text (str): Its whole content.
    """
    with atomic_path(path) as tmp_file, \
            open(tmp_file, 'w', encoding='utf-8') as f:
        f.write(text)


def open_for_writing(path: str, binary: bool = False):
    """``open(path, 'w')`` for a file written as it goes (a log a process
    streams into), which cannot be renamed into place at the end: a
    symlink at ``path`` is replaced by the new file, never written through
    (``O_NOFOLLOW``).

    Args:
        path (str): The file to (re)write.
        binary (bool): ``'wb'`` instead of ``'w'`` (UTF-8). Defaults to
            False.
    """
    drop_symlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                 getattr(os, 'O_NOFOLLOW', 0), 0o644)
    return os.fdopen(fd, 'wb') if binary else \
        os.fdopen(fd, 'w', encoding='utf-8')


def suffixed_temp(path: str) -> str:
    """A temporary name beside ``path`` that keeps its extension
    (``.<name>.partial-<pid>.png``), for writers that choose the format by
    it (``mmcv.imwrite``, ``savefig``); for :func:`atomic_path`'s ``tmp``.

    Args:
        path (str): The file to be written.
    """
    folder, name = osp.split(path)
    stem, ext = osp.splitext(name)
    return osp.join(folder, f'.{stem}.partial-{os.getpid()}{ext}')


def read_json(path: str):
    """The JSON document of ``path``; ValueError naming the file if it
    cannot be read or parsed."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{path}: cannot read it as JSON ({e})') from e


# ---------------------------------------------- temporaries of generators
#: ``<name>.tmp-<host>-<pid>`` (``<name>.tmp-<pid>`` before the host was
#: recorded): everything a generator writes goes through such a temp
TEMP_RE = re.compile(r'^.+\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)$')


def temp_path(path: str, pid: Optional[int] = None) -> str:
    """The temporary name under which ``path`` is written by process
    ``pid`` (default: this one). The host is part of it, so a data root on
    a shared file system never mistakes another machine's pid for one of
    its own."""
    return (f'{path}.tmp-{socket.gethostname()}-'
            f'{os.getpid() if pid is None else pid}')


def pid_alive(pid: int) -> bool:
    """Whether a process of that id runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _pid_is_gone(pid: int) -> bool:
    """True only when no process ``pid`` exists on this machine."""
    if pid <= 0 or os.name != 'posix':
        return False  # os.kill(0, ...) is the process group; no probe
    return not pid_alive(pid)


def remove_stale_temps(root: str,
                       log: Optional[Callable[[str, str], None]] = None
                       ) -> List[str]:
    """Remove the temps (:func:`temp_path`) left in ``root`` and its folders
    by writers that were killed (SIGKILL, power loss: no ``finally`` ran).
    A temp is stale when it was made on this host by a process that no
    longer exists; a running writer's temp is left alone.

    Args:
        root (str): The folder (an existing one).
        log (callable, optional): Called with ``(path, pid)`` of each
            removed temp.

    Returns:
        list[str]: The removed paths.
    """
    host = socket.gethostname()
    folders = [root] + [
        osp.join(root, d) for d in sorted(os.listdir(root))
        if osp.isdir(osp.join(root, d)) and not TEMP_RE.match(d)]
    removed = []
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            m = TEMP_RE.match(name)
            if m is None or m['host'] not in (None, host) or not \
                    _pid_is_gone(int(m['pid'])):
                continue
            path = osp.join(folder, name)
            if osp.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
            if log is not None:
                log(path, m['pid'])
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_folder(folder: str, whole: bool = True) -> Iterator[str]:
    """Yield a temporary folder to fill; on success its files become
    ``folder``'s.

    Whole (``whole=True``): ``folder`` is replaced by the temporary folder
    (one rename), so an interrupted writer leaves no half folder behind.
    Else each file moves (an atomic rename each) into ``folder``, which must
    exist: for adding files to a folder a reader may already use. The
    temporary folder (:func:`temp_path` of ``.<name>`` beside ``folder``)
    goes on any exception, KeyboardInterrupt included.

    Args:
        folder (str): The folder to write (its parent must exist).
        whole (bool): Replace the folder whole, or add the files to it.
            Defaults to True.
    """
    parent, name = osp.split(osp.normpath(folder))
    tmp = temp_path(osp.join(parent, f'.{name}'))
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        yield tmp
        if whole:
            shutil.rmtree(folder, ignore_errors=True)
            os.rename(tmp, folder)
        else:
            for file in sorted(os.listdir(tmp)):
                os.replace(osp.join(tmp, file), osp.join(folder, file))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def folder_lock(folder: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if needed) meanwhile.

    The lock is on the folder itself, so no lock file joins its contents;
    it goes when the process does, killed or not. Without ``flock``
    (Windows) nothing is locked.
    """
    os.makedirs(folder, exist_ok=True)
    if fcntl is None:  # no flock (Windows): one writer at a time, please
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class OutputClaims:
    """The files one run of a tool writes: none of them replaces a file that
    this run did not create, unless the user says so (``--overwrite``), and
    no two of them share a name.

    Claim every output before the work starts, so a refused name costs
    nothing and no output is half written::

        claims = OutputClaims(args.overwrite)
        out = claims.claim(args.out, '--out')   # FileExistsError if taken

    Args:
        overwrite (bool): Whether an existing file may be replaced (never a
            folder, and never a file this run has claimed already).
            Defaults to False.
        option (str): The command-line switch that allows it, named in the
            errors. Defaults to ``'--overwrite'``.
    """

    def __init__(self, overwrite: bool = False,
                 option: str = '--overwrite') -> None:
        self.overwrite = bool(overwrite)
        self.option = option
        self._claimed = {}  # real path -> what claimed it

    def taken(self, path: str) -> bool:
        """Whether this run has claimed ``path`` already."""
        return osp.realpath(path) in self._claimed

    def claim(self, path: str, what: str = 'output') -> str:
        """Reserve ``path`` for this run; returns it.

        Args:
            path (str): The file to be written.
            what (str): What the file is, for the errors (e.g. ``'--out'``,
                ``'the CAM grid of a.jpg'``).

        Raises:
            FileExistsError: This run writes that file already, or it exists
                (not written by this run) and ``overwrite`` is off.
            IsADirectoryError: ``path`` is a folder.
        """
        real = osp.realpath(path)
        if real in self._claimed:
            raise FileExistsError(
                f'{what} {path!r} is also {self._claimed[real]}: two outputs '
                'of one run may not share a name.')
        if osp.isdir(path):
            raise IsADirectoryError(
                f'{what} {path!r} is a folder; give a file name.')
        if osp.lexists(path) and not self.overwrite:
            raise FileExistsError(
                f'{what} {path!r} exists and was not written by this run; '
                f'it is not replaced without {self.option}: choose another '
                f'name, move the file away, or pass {self.option}.')
        self._claimed[real] = what
        return path


def refuse_overwrite(path: str, overwrite: bool = False, what: str = 'output',
                     option: str = '--overwrite') -> str:
    """:meth:`OutputClaims.claim` for a tool that writes one file; returns
    ``path``."""
    return OutputClaims(overwrite, option).claim(path, what)
