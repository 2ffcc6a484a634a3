"""One way to write a file whole or not at all, and one rule for what a
tool may write over, for every writer we own."""
import contextlib
import os
import os.path as osp
from typing import Iterator, Optional


@contextlib.contextmanager
def atomic_path(path: str, tmp: Optional[str] = None,
                fsync: bool = False) -> Iterator[str]:
    """Yield a temporary path to write; rename it over ``path`` on success.

    On any exception (KeyboardInterrupt too) the temporary file is removed
    and ``path`` is left as it was, so a reader never sees half a file and a
    failed write never costs the previous one.

    Args:
        path (str): The file to (re)write.
        tmp (str, optional): The temporary name, beside ``path`` (same file
            system, so the rename is atomic). Defaults to
            ``<path>.partial-<pid>``.
        fsync (bool): Flush the written file to disk before the rename (for
            checkpoints, which must survive a power loss as well).
    """
    tmp = tmp or f'{path}.partial-{os.getpid()}'
    try:
        yield tmp
        if fsync:
            with open(tmp, 'rb') as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


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
