"""LoadImageFromFileChecked's decoded-image cache: same pixels as a fresh
read, no disk access for a cached file, no way for a later step to change
what the next epoch reads, and the memory bound respected."""
import numpy as np
import pytest
from mmpretrain.registry import TRANSFORMS
from PIL import Image

import occam_plugin  # noqa: F401  (registers LoadImageFromFileChecked)
from tests.helpers import write_png_header


def write_images(folder, n=3, side=8):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = str(folder / f'{i}.png')
        Image.fromarray(rng.integers(0, 256, (side, side, 3),
                                     dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_cache_reads_each_file_once_and_serves_the_same_pixels(tmp_path):
    paths = write_images(tmp_path)
    plain = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    cached = TRANSFORMS.build(dict(type='LoadImageFromFileChecked',
                                   cache_decoded=True))
    first = [cached(dict(img_path=p))['img'] for p in paths]
    fresh = [plain(dict(img_path=p))['img'] for p in paths]
    for img, ref in zip(first, fresh):
        np.testing.assert_array_equal(img, ref)
    # a later step that writes into the image cannot reach the cache
    first[0][:] = 0
    for p in paths:
        (tmp_path / p).unlink()  # the next epoch does not touch the disk
    again = [cached(dict(img_path=p))['img'] for p in paths]
    for img, ref in zip(again, fresh):
        np.testing.assert_array_equal(img, ref)
    with pytest.raises(FileNotFoundError):  # the plain loader does read it
        plain(dict(img_path=paths[0]))


def test_cache_stops_growing_at_its_bound(tmp_path):
    paths = write_images(tmp_path, n=3, side=16)  # 768 bytes each
    cached = TRANSFORMS.build(dict(type='LoadImageFromFileChecked',
                                   cache_decoded=True,
                                   cache_max_mb=1600 / 2**20))
    for p in paths:
        cached(dict(img_path=p))
    assert cached._cache_bytes == 2 * 16 * 16 * 3  # the third did not fit
    (tmp_path / '2.png').unlink()
    cached(dict(img_path=paths[0]))  # cached
    with pytest.raises(FileNotFoundError, match='2.png'):
        cached(dict(img_path=paths[2]))  # read from disk, as without cache


def test_bad_cache_bound_is_refused():
    with pytest.raises(ValueError, match='cache_max_mb must be a number'):
        TRANSFORMS.build(dict(type='LoadImageFromFileChecked',
                              cache_decoded=True, cache_max_mb=-1))


@pytest.mark.parametrize('side', [12_000, 20_000])  # PIL: warns / refuses
def test_decompression_bomb_is_refused_from_its_header(tmp_path, side,
                                                       monkeypatch):
    """Above the pixel limit (default: PIL's 89.5 M) an image is refused,
    naming the file, before any pixel is decoded."""
    from occam_plugin.datasets.transforms import loading
    path = write_png_header(tmp_path / 'bomb.png', side, side)
    decoded = []
    monkeypatch.setattr(loading.mmcv, 'imfrombytes',
                        lambda *a, **k: decoded.append(a) or None)
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    with pytest.raises(ValueError) as err:
        load(dict(img_path=path))
    msg = str(err.value)
    assert 'Image too large' in msg and path in msg
    assert 'max_pixels=89,478,485' in msg
    if side == 12_000:
        assert '12000 x 12000 px' in msg
    assert not decoded  # refused before decoding


def test_pixel_limit_is_configurable(tmp_path):
    path = write_images(tmp_path, n=1, side=16)[0]  # 256 pixels
    small = TRANSFORMS.build(dict(type='LoadImageFromFileChecked',
                                  max_pixels=255))
    with pytest.raises(ValueError, match=r'16 x 16 px .*max_pixels=255'):
        small(dict(img_path=path))
    exact = TRANSFORMS.build(dict(type='LoadImageFromFileChecked',
                                  max_pixels=256))
    assert exact(dict(img_path=path))['img'].shape == (16, 16, 3)
    unlimited = TRANSFORMS.build(dict(type='LoadImageFromFileChecked',
                                      max_pixels=None))
    assert unlimited(dict(img_path=path))['img'].shape == (16, 16, 3)
    for bad in (0, -5, 1.5, True, '100'):
        with pytest.raises(ValueError, match='max_pixels must be an integer'):
            TRANSFORMS.build(dict(type='LoadImageFromFileChecked',
                                  max_pixels=bad))


def test_pixel_limit_after_decoding_when_pil_cannot_read_the_header(
        tmp_path, monkeypatch):
    from occam_plugin.datasets.transforms import loading
    path = write_images(tmp_path, n=1, side=16)[0]
    monkeypatch.setattr(loading, 'header_size', lambda data: None)
    with pytest.raises(ValueError, match=r'Image too large: .*16 x 16 px'):
        loading.read_image_checked(path, max_pixels=100)


def _encoded(fmt, width, height, **kwargs):
    import io
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3),
                                 dtype=np.uint8)).save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize('fmt, kwargs', [
    ('JPEG', {}), ('JPEG', dict(progressive=True)),
    ('JPEG', dict(exif=Image.Exif())), ('PNG', {}), ('BMP', {})])
def test_header_size_is_what_pil_reads(fmt, kwargs):
    """PNG and JPEG headers are read directly (PIL's parser costs more than
    decoding a small JPEG), other formats through PIL: the same sizes."""
    from occam_plugin.datasets.transforms.loading import header_size
    for width, height in [(1, 1), (17, 9), (80, 80), (300, 919)]:
        data = _encoded(fmt, width, height, **kwargs)
        assert header_size(data) == (width, height)


def test_jpeg_bomb_is_refused_from_its_frame_header(tmp_path, monkeypatch):
    """A JPEG whose frame header declares 40,000 x 30,000 px (the few
    bytes of a real 16 px one) is refused before decoding."""
    from occam_plugin.datasets.transforms import loading
    data = bytearray(_encoded('JPEG', 16, 16))
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = (30_000).to_bytes(2, 'big') + \
        (40_000).to_bytes(2, 'big')
    path = tmp_path / 'bomb.jpg'
    path.write_bytes(bytes(data))
    decoded = []
    monkeypatch.setattr(loading.mmcv, 'imfrombytes',
                        lambda *a, **k: decoded.append(a) or None)
    with pytest.raises(ValueError, match=r'40000 x 30000 px .* by its '
                       r'header.*max_pixels=89,478,485'):
        loading.read_image_checked(str(path))
    assert not decoded
