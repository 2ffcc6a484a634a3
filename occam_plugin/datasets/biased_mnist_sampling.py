"""Biased MNIST v2, sampling: every value an image is made from, drawn from
seeded random streams (pure functions of their arguments; nothing is read or
written here).

The factors of an image and what each is tied to (:data:`PARENTS`), the
canonical digit positions, the per-image layout (digit box, letter cells and
samples, texture repeats) and the json record of an image.
:mod:`.biased_mnist_rendering` turns these values into pixels and
:mod:`.biased_mnist_generator` runs both and writes the files.
"""
import json
import zlib
from typing import Dict, List, Sequence, Union

import numpy as np

__all__ = [
    'digit_scales', 'position_candidates', 'canonical_positions', 'p_tag',
    'normalize_p_bias', 'sample_tied', 'sample_factors',
    'letter_cell_candidates', 'subset_rng', 'draw_layout', 'draw_subset',
    'image_record', 'val_digits', 'NUM_VALUES', 'CELL_PX', 'FACTORS',
    'FACTOR_KEYS', 'PARENTS', 'LETTERS_PER_IMAGE', 'LETTER_SAMPLES',
    'TEXTURE_REPEATS', 'VAL_FRACTION', 'TEST_P_BIAS', 'P_BIAS_FORMS'
]

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
LETTERS_PER_IMAGE = 3
#: rendered samples per letter in a subset's pool (the layout picks one)
LETTER_SAMPLES = 200
TEXTURE_REPEATS = (6, 18)  # per side, drawn from [low, high)
#: trainval indices that go to val (the reference: 10,000 of 60,000)
VAL_FRACTION = 1 / 6
TEST_P_BIAS = 0.1  # = uniform over the 10 values
SUBSETS = ('trainval', 'test')


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


def subset_rng(seed: int, subset: str, folder_name: str
               ) -> np.random.Generator:
    """The random stream of one subset (``'trainval'`` / ``'test'``) in the
    folder ``folder_name`` (``full_<p>`` / ``full``): the factor values,
    then each image's layout, are drawn from it in order."""
    return np.random.default_rng(
        [seed, SUBSETS.index(subset),
         zlib.crc32(folder_name.encode())])


def draw_layout(values: Dict[str, int], canon: List[List[tuple]],
                num_cells: int, rng: np.random.Generator) -> dict:
    """Where an image with factor ``values`` puts its digit, letters and
    texture: the position and side of the digit box, 3 letter cells outside
    it with a letter sample (index into the pool of its letter) each, and
    the texture's repeats per side."""
    s = values['digit_scale']
    position = canon[s][values['digit_position']]
    side = int(CELL_PX * digit_scales(num_cells)[s])
    cands = letter_cell_candidates(position, side, num_cells)
    picks = rng.choice(len(cands), LETTERS_PER_IMAGE, replace=False)
    cells = [cands[j] for j in picks]
    samples = [int(rng.integers(LETTER_SAMPLES)) for _ in cells]
    repeats = int(rng.integers(*TEXTURE_REPEATS))
    return dict(position=position, side=side, cells=cells,
                letter_samples=samples, repeats=repeats)


def draw_subset(labels: np.ndarray, p_bias: Dict[str, float],
                canon: List[List[tuple]], num_cells: int,
                rng: np.random.Generator) -> List[tuple]:
    """Every image's ``(factor values, layout)``, drawn in order from
    ``rng``: all factor values first (:func:`sample_factors`), then the
    layouts image by image. Rendering draws nothing, so the files do not
    depend on which images are rendered, when, or by how many processes."""
    values = sample_factors(labels, p_bias, canon, rng)
    draws = []
    for i in range(len(labels)):
        v = {f: int(values[f][i]) for f in FACTORS}
        draws.append((v, draw_layout(v, canon, num_cells, rng)))
    return draws


def image_record(i: int, label: int, mnist_index: int, values: Dict[str, int],
                 layout: dict, num_cells: int) -> dict:
    """The json entry of image ``i``: the released keys, then ours."""
    k = num_cells
    position, side = layout['position'], layout['side']
    rec = dict(index=i, digit=int(label))
    for f in FACTORS:
        rec[FACTOR_KEYS[f]] = values[f]
    # our position value: the top-left cell, row-major (the reference's
    # json repeats the scale index here)
    rec[FACTOR_KEYS['digit_position']] = int(position[0] * k + position[1])
    r0, c0 = position[0] * CELL_PX, position[1] * CELL_PX
    rec.update(
        # as the reference: (row1, col1, row2, col2) in 160 px units
        digit_position=[r0, c0, r0 + side, c0 + side],
        digit_position_canonical=values['digit_position'] == 0,
        texture_repeats=layout['repeats'],
        letter_cells=[int(r * k + c) for r, c in layout['cells']],
        mnist_index=int(mnist_index))
    return rec


def val_digits(num_digits: int, seed: int) -> np.ndarray:
    """Which source digits of the trainval set are val digits (a fixed
    ``VAL_FRACTION`` of them, by a seeded permutation), so val digits are
    never trained on."""
    rng = np.random.default_rng([seed, 1989])
    perm = rng.permutation(num_digits)
    is_val = np.zeros(num_digits, bool)
    is_val[perm[:int(round(num_digits * VAL_FRACTION))]] = True
    return is_val
