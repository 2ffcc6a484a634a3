"""Biased MNIST v2, rendering: the pixels of one image from its drawn
values (pure functions of their arguments, per image; the only random
draws, in :func:`letter_bank`, come from their own seeded stream).

Colours, textures and letters of the factors, the letter pool that stands in
for EMNIST, and the painting of digit, texture and letters onto the canvas.
:mod:`.biased_mnist_sampling` draws the values painted here.
"""
from functools import lru_cache
from typing import Dict, List

import cv2
import numpy as np
from PIL import Image

from .biased_mnist_sampling import CELL_PX, LETTER_SAMPLES, digit_scales

__all__ = [
    'render_letter', 'letter_bank', 'resize_digit', 'texture_mask',
    'render_sample', 'letter_images', 'to_pil', 'DIGIT_COLORS',
    'TEXTURE_COLORS', 'LETTER_COLORS', 'TEXTURES', 'LETTERS', 'LETTER_PX',
    'DIGIT_COLOR_THRESHOLD', 'TEXTURE_FONT_SCALE', 'JPEG_QUALITY'
]

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
LETTER_PX = 28
#: stroke intensity above which a digit pixel takes the digit colour
DIGIT_COLOR_THRESHOLD = 20
TEXTURE_FONT_SCALE = 0.4
#: quality of the saved JPEG images
JPEG_QUALITY = 95


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


def letter_bank(subset: str, seed: int,
                per_letter: int = LETTER_SAMPLES) -> np.ndarray:
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


def letter_images(letters: np.ndarray, values: Dict[str, int],
                  layout: dict) -> List[np.ndarray]:
    """The pool samples of the image's letter that its layout picked."""
    return [letters[values['letter'], j] for j in layout['letter_samples']]


def to_pil(img: np.ndarray, image_size: int) -> Image.Image:
    """A rendered image as PIL, resized (bilinear) to ``image_size`` if that
    is not its size (the generator saves it as a JPEG of quality
    :data:`JPEG_QUALITY`)."""
    pil = Image.fromarray(img)
    if image_size != pil.width:
        pil = pil.resize((image_size,) * 2, Image.BILINEAR)
    return pil
