import io
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS

from ...errors import MissingKeyError

__all__ = [
    'check_max_pixels', 'header_size', 'read_image_checked',
    'real_path_outside', 'check_image_files', 'LoadImageFromFileChecked',
    'DEFAULT_MAX_PIXELS'
]


#: the most pixels (width x height) an image may have before it is decoded:
#: PIL's own default limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 89.5 M, a
#: 9,459 px square); the largest BAR image has 919 px a side. A larger image
#: is refused, as a decompression bomb (a small file that decodes to
#: gigabytes) would be.
DEFAULT_MAX_PIXELS = 89_478_485


def check_max_pixels(max_pixels, owner: str) -> Optional[int]:
    """``max_pixels`` if it is None or an integer >= 1, else a ValueError
    naming ``owner``."""
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) \
            or max_pixels < 1:
        raise ValueError(f'{owner}: max_pixels must be an integer >= 1 '
                         f'(or None: no limit), got {max_pixels!r}')
    return max_pixels


class _TooLarge(Exception):
    """PIL refused the header: more than twice its own pixel limit."""


#: JPEG start-of-frame markers (every SOFn but DHT 0xC4, JPG 0xC8, DAC 0xCC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: JPEG markers without a length field (TEM, RST0-7, SOI)
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])


def _png_jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of a PNG (its IHDR) or a JPEG (its first frame
    header, the one decoders use), or None for another format or a header
    this does not follow. A few byte reads instead of PIL's parser, which
    costs more than decoding a small JPEG."""
    if data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR' \
            and len(data) >= 24:
        return (int.from_bytes(data[16:20], 'big'),
                int.from_bytes(data[20:24], 'big'))
    if data[:2] != b'\xff\xd8':
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker == 0xDA:  # scan data before any frame header
            return None
        if marker in _JPEG_SOF:
            if i + 9 > n:
                return None
            return (int.from_bytes(data[i + 7:i + 9], 'big'),
                    int.from_bytes(data[i + 5:i + 7], 'big'))
        i += 2 + int.from_bytes(data[i + 2:i + 4], 'big')
    return None


def header_size(img_bytes: bytes) -> Optional[Tuple[int, int]]:
    """``(width, height)`` from the image header, without decoding the
    pixels (PNG and JPEG read directly, other formats by PIL, which reads
    pixels lazily); None when neither knows the format (the decoder then
    tries it, and the decoded size is checked)."""
    size = _png_jpeg_size(img_bytes)
    if size is not None:
        return size
    from PIL import Image
    try:
        with warnings.catch_warnings():
            # our limit is checked by the caller, not PIL's warning
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(img_bytes)) as im:
                return im.size
    except Image.DecompressionBombError as e:
        # above twice PIL's limit, PIL refuses even to read the header;
        # its message gives the number of pixels
        raise _TooLarge(str(e)) from None
    except Exception:  # unknown or corrupt: the decoder says which
        return None


def _too_large(filename: str, what: str, max_pixels: int,
               decoded: bool = False) -> ValueError:
    return ValueError(
        f'Image too large: {filename!r} is {what}, above the limit of '
        f'max_pixels={max_pixels:,} (a decompression bomb, or an image far '
        'larger than the dataset\'s others)'
        f'{"" if decoded else "; it was not decoded"}. Shrink or remove the '
        'file, or raise max_pixels (of LoadImageFromFileChecked, or of '
        'OccamInferencer; None: no limit).')


def read_image_checked(filename: str,
                       color_type: str = 'color',
                       imdecode_backend: str = 'cv2',
                       backend_args: Optional[dict] = None,
                       max_pixels: Optional[int] = DEFAULT_MAX_PIXELS
                       ) -> np.ndarray:
    """Read and decode one image; errors name the file.

    Args:
        filename (str): The image file.
        color_type (str): mmcv's ``imfrombytes`` flag. Defaults to 'color'.
        imdecode_backend (str): mmcv's decoding backend. Defaults to 'cv2'.
        backend_args (dict, optional): mmengine file backend arguments.
        max_pixels (int, optional): Refuse an image of more pixels (width x
            height), checked on the header before the pixels are decoded.
            None: no limit. Defaults to :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        FileNotFoundError: The file cannot be read.
        ValueError: The bytes cannot be decoded as an image (corrupt,
            truncated or empty file), or the image has more than
            ``max_pixels`` pixels.
    """
    try:
        img_bytes = fileio.get(filename, backend_args=backend_args)
    except Exception as e:
        raise FileNotFoundError(
            f'Cannot read image file {filename!r}: {e}') from e
    if max_pixels is not None and img_bytes:
        try:
            size = header_size(img_bytes)
        except _TooLarge as e:
            from PIL import Image
            pil_limit = Image.MAX_IMAGE_PIXELS
            if pil_limit is None or max_pixels <= 2 * pil_limit:
                raise _too_large(filename, f'refused by PIL ({e})',
                                 max_pixels) from None
            size = None  # beyond PIL's limit, within ours: decode, check
        if size is not None and size[0] * size[1] > max_pixels:
            raise _too_large(
                filename, f'{size[0]} x {size[1]} px '
                f'({size[0] * size[1]:,} pixels) by its header', max_pixels)
    img = None
    error = None
    if img_bytes:
        try:
            img = mmcv.imfrombytes(img_bytes, flag=color_type,
                                   backend=imdecode_backend)
        except Exception as e:  # decoder-specific errors (PIL, turbojpeg)
            error = e
    if img is None or not isinstance(img, np.ndarray) or img.size == 0:
        raise ValueError(
            f'Corrupt image: {filename!r} ({len(img_bytes)} bytes) could '
            f'not be decoded as an image by the {imdecode_backend!r} '
            f'backend{f" ({error})" if error else ""}. Replace or delete '
            'the file (re-extract the dataset).')
    if max_pixels is not None and img.shape[0] * img.shape[1] > max_pixels:
        # a format whose header PIL could not read: checked after decoding
        raise _too_large(filename, f'{img.shape[1]} x {img.shape[0]} px',
                         max_pixels, decoded=True)
    return img


def real_path_outside(path: str, roots: Sequence[str]) -> Optional[str]:
    """Where ``path`` really is (every link resolved) when that lies under
    none of ``roots`` (folders already resolved with ``os.path.realpath``),
    else None: how the readers tell an image that leaves the data root.

    Args:
        path (str): An image path.
        roots (Sequence[str]): The resolved folders it may lie in.
    """
    real = osp.realpath(path)
    if any(osp.commonpath([root, real]) == root for root in roots):
        return None
    return real


def check_image_files(paths: Sequence[str],
                      loader: Optional[LoadImageFromFile] = None,
                      max_listed: int = 10) -> None:
    """Decode every image once; raise one error naming all bad files.

    Args:
        paths (Sequence[str]): Image files.
        loader (LoadImageFromFile, optional): The pipeline's loading step,
            whose ``color_type``, ``imdecode_backend``, ``backend_args`` (and
            for :class:`LoadImageFromFileChecked`, ``max_pixels``) are used,
            so the check accepts exactly what training reads. Defaults to
            mmcv's defaults (cv2, colour) and :data:`DEFAULT_MAX_PIXELS`.
        max_listed (int): How many errors the message quotes.

    Raises:
        ValueError: Some files cannot be read or decoded.
    """
    kwargs = {}
    if loader is not None:
        kwargs = dict(color_type=loader.color_type,
                      imdecode_backend=loader.imdecode_backend,
                      backend_args=loader.backend_args,
                      max_pixels=getattr(loader, 'max_pixels',
                                         DEFAULT_MAX_PIXELS))
    errors: List[str] = []
    for path in paths:
        try:
            read_image_checked(path, **kwargs)
        except (FileNotFoundError, ValueError) as e:
            errors.append(str(e))
    if errors:
        more = len(errors) - max_listed
        raise ValueError(
            f'{len(errors)} of {len(paths)} images cannot be read:\n  ' +
            '\n  '.join(errors[:max_listed]) +
            (f'\n  ... and {more} more' if more > 0 else ''))


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    """``LoadImageFromFile`` that names the file when it cannot be decoded.

    mmcv's loader either re-raises a bare decoder error or fails an assert;
    in a long run over thousands of files the user needs to know which file is
    broken and what to do about it.

    A sample that arrives already decoded (``img`` set, no ``img_path``)
    passes through unchanged. mmpretrain's inferencers (and its other tools
    that read a test pipeline) decode the image themselves and strip the
    loading step by its exact type name, ``'LoadImageFromFile'``
    (``mmpretrain.datasets.remove_transform``), so this step stays in their
    pipeline. Passing decoded samples through makes every such tool work on
    our configs unchanged; registering this class under mmcv's name instead
    would replace ``LoadImageFromFile`` for every mmpretrain config.

    With ``cache_decoded=True`` each decoded image is kept in memory (by
    path) and later epochs copy it instead of reading and decoding the file
    again: the same pixels, without the decode. Each loader process
    holds its own cache, so keep it for small datasets read in the main
    process (``num_workers=0``) or by persistent workers; past
    ``cache_max_mb`` images are read from disk as usual.

    An image of more than ``max_pixels`` pixels is refused, naming the file,
    before its pixels are decoded (the size comes from the file's header):
    a decompression bomb (a 20,000 x 20,000 PNG can take 400 KB on disk and
    1.2 GB decoded) stops the run instead of filling the memory of every
    loader process.

    Args:
        cache_decoded (bool): Keep decoded images in memory. Defaults to
            False.
        cache_max_mb (float): Memory the cache may take, in MiB. Defaults to
            1024.
        max_pixels (int, optional): The most pixels (width x height) of an
            image; None: no limit. Defaults to :data:`DEFAULT_MAX_PIXELS`
            (PIL's limit, about 89.5 M).
        **kwargs: Arguments of :class:`mmcv.transforms.LoadImageFromFile`
            (``to_float32``, ``color_type``, ``imdecode_backend``,
            ``backend_args``, ``ignore_empty``).
    """

    def __init__(self, cache_decoded: bool = False,
                 cache_max_mb: float = 1024,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, **kwargs):
        super().__init__(**kwargs)
        self.max_pixels = check_max_pixels(max_pixels, type(self).__name__)
        if not isinstance(cache_max_mb, (int, float)) or cache_max_mb < 0:
            raise ValueError(f'{type(self).__name__}: cache_max_mb must be '
                             f'a number >= 0, got {cache_max_mb!r}')
        self.cache_decoded = bool(cache_decoded)
        self.cache_max_bytes = int(cache_max_mb * 2**20)
        self._cache = {}
        self._cache_bytes = 0

    def _read(self, path: str) -> np.ndarray:
        img = self._cache.get(path) if self.cache_decoded else None
        if img is None:
            img = read_image_checked(path, self.color_type,
                                     self.imdecode_backend,
                                     self.backend_args, self.max_pixels)
            if self.cache_decoded and \
                    self._cache_bytes + img.nbytes <= self.cache_max_bytes:
                self._cache[path] = img
                self._cache_bytes += img.nbytes
        # a copy: no later step can change what the next epoch reads
        return img.copy() if self.cache_decoded else img

    def transform(self, results: dict) -> Optional[dict]:
        if 'img_path' not in results:
            if results.get('img') is None:
                raise MissingKeyError(
                    f'{type(self).__name__}: the sample has neither '
                    f'`img_path` (a file to read) nor `img` (an image '
                    f'already decoded); its keys: {sorted(results)}.')
            # decoded upstream (an inferencer): keep it as it is
            if self.to_float32:
                results['img'] = results['img'].astype(np.float32)
            results.setdefault('img_shape', results['img'].shape[:2])
            results.setdefault('ori_shape', results['img'].shape[:2])
            return results
        try:
            img = self._read(results['img_path'])
        except (FileNotFoundError, ValueError):
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
