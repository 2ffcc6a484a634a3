"""Pinned digests of tiny synthetic datasets: the files the Biased MNIST
generator writes, and the samples (images, labels, bias fields, groups) that
BiasedMNIST and ColoredMNIST give. A refactor of the generators or of the
group code must leave every byte the same; a digest change means the data
changed (or Pillow / libjpeg / OpenCV changed how they encode or draw: the
pins hold for the versions of requirements.txt, on any CPU)."""
import hashlib
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATASETS
from occam_plugin.datasets import biased_mnist_generator as gen
from tests.helpers import REPO

#: a few images per set: a train set with one p, one with a p per factor
#: (its folder is ``full_custom<hash>``), the val set and the test set
GEN = dict(num_trainval=48, num_test=8, image_size=32, seed=5)
P_PER_FACTOR = [0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5]


def tree_digest(root: str) -> dict:
    """sha256 of every file under ``root``, by relative path."""
    out = {}
    for d, _, files in os.walk(root):
        for n in files:
            path = osp.join(d, n)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(
                    f.read()).hexdigest()
    return out


def combined(digests: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(digests):
        h.update(f'{k}:{digests[k]}\n'.encode())
    return h.hexdigest()


def samples_digest(ds, root: str = '') -> str:
    """sha256 of every sample's annotations (paths relative to ``root``,
    in-memory images by their bytes) and of the metainfo."""
    h = hashlib.sha256(repr(sorted(ds.metainfo.items())).encode())
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        for k in sorted(info):
            v = info[k]
            if isinstance(v, np.ndarray):
                h.update(f'{k}:{v.shape}:{v.dtype}:'.encode() + v.tobytes())
            elif k == 'img_path':
                h.update(f'{k}:{osp.relpath(v, root)}'.encode())
            else:
                v = sorted(v.items()) if isinstance(v, dict) else v
                h.update(f'{k}:{v!r}'.encode())
    return h.hexdigest()


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bm_digest'))
    gen.generate_biased_mnist(root, p_bias=0.9, **GEN)
    gen.generate_biased_mnist(root, p_bias=P_PER_FACTOR, splits=('train', ),
                              **GEN)
    return root


def pinned_version(package: str) -> str:
    """The exact version requirements.txt pins for ``package``."""
    with open(osp.join(REPO, 'requirements.txt')) as f:
        pins = dict(re.findall(r'^([A-Za-z0-9_.-]+)==(\S+)', f.read(), re.M))
    return pins[package]


def test_renderer_is_the_pinned_stack():
    # the pixels depend on these libraries' versions (not on the CPU): a
    # digest failure below with other versions installed is a stack change
    found = gen.renderer_versions()
    assert pinned_version('opencv-python').startswith(found['opencv'] + '.')
    assert found['pillow'] == pinned_version('pillow')
    assert found['numpy'] == pinned_version('numpy')


def generate_all(root: str) -> None:
    """The fixture's sets plus the rest of ``full_0.5`` (training on it)."""
    gen.generate_biased_mnist(root, p_bias=0.9, **GEN)
    gen.generate_biased_mnist(root, p_bias=P_PER_FACTOR, splits=('train', ),
                              **GEN)
    gen.generate_biased_mnist(root, p_bias=0.5, splits=('train', ), **GEN)


def baseline_cpu_env() -> dict:
    """An environment in which every library that renders, resizes or
    encodes takes its plain code path: OpenCV's dispatched SIMD kernels
    (each one the build dispatches), numpy's dispatched kernels,
    libjpeg-turbo's SIMD and glibc's libm variants are switched off. A
    machine of another CPU kind picks other ones of these paths; the files
    must not depend on which."""
    import cv2
    dispatched = [f[1:] for f in cv2.getCPUFeaturesLine().split()
                  if f.startswith('*') and not f.endswith('?')]
    env = dict(os.environ)
    env.update(
        OPENCV_CPU_DISABLE=','.join(dispatched),
        NPY_DISABLE_CPU_FEATURES=' '.join(
            ('AVX512F', 'AVX512CD', 'AVX512_SKX', 'AVX512_CLX', 'AVX512_CNL',
             'AVX512_ICL', 'AVX512_SPR', 'AVX2', 'FMA3', 'F16C', 'AVX')),
        JSIMD_FORCENONE='1',
        GLIBC_TUNABLES='glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F,-AVX512DQ,-AVX',
        PYTHONPATH=os.pathsep.join(
            [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(
                os.pathsep) if p]))
    return env


#: sized sets take their digits in class turns (48 trainval / 8 test images
#: were all zeros before) and 48 / 6 of the trainval images are val; the
#: params files record the renderer versions
BIASED_MNIST_FILES = (
    '039df01d4ba62e0c0369606d3c54c08aab035abb3dcccc2466c1177249ac80fc')


def test_generated_biased_mnist_files_are_pinned(tiny_root):
    partial = tree_digest(tiny_root)
    # the val split reads full_0.5 at val_ixs only: the rest of that set is
    # listed as missing until a run trains on it
    val_ixs = gen.read_json(osp.join(tiny_root, 'val_ixs.json'))
    assert sorted(f for f in partial if f.startswith('full_0.5/trainval/')) \
        == sorted(f'full_0.5/trainval/{i}.jpg' for i in val_ixs)
    assert 'full_0.5/trainval_missing.json' in partial
    # training on p 0.5 renders the rest: then every byte is what a full
    # rendering wrote before (the pin predates partial rendering)
    gen.generate_biased_mnist(tiny_root, p_bias=0.5, splits=('train', ),
                              **GEN)
    digests = tree_digest(tiny_root)
    # 3 root files; per set its json, params json and images
    assert len(digests) == 3 + 3 * (2 + 48) + (2 + 8)
    assert combined(digests) == BIASED_MNIST_FILES, (
        f'the generated files changed; made with {gen.renderer_versions()} '
        f'(pins: requirements.txt)', digests)
    assert all(digests[f] == d for f, d in partial.items()
               if f != 'full_0.5/trainval_missing.json')


BIASED_MNIST_SAMPLES = {
    ('train', 0.9, 'class_x_primary', 'digit_color'):
        '73208bda4bb5dca176cf4a7f60c4ac24a935210a34d6a7c7d78967e45300c2e8',
    ('train', 'custom', 'class_x_aligned', 'digit_position'):
        'ea964ea4426be4b03fef22f1ef15b47dc76ca855a16a43456801bd9dff1df923',
    ('val', 0.9, 'class_x_aligned', 'texture'):
        'e4ddd5f12b6f3c8399c921c0c87064762e0b246421bcb83bd25c71f7e85c1f0c',
    ('test', 0.9, 'class_x_primary', 'letter_color'):
        '3935740cda7a80eb22b6229b5c02555e140a8015ccbba59d8743381670aff401',
}


@pytest.mark.parametrize('key', sorted(BIASED_MNIST_SAMPLES, key=repr))
def test_biased_mnist_samples_are_pinned(tiny_root, key):
    split, p, group_by, primary = key
    ds = DATASETS.build(dict(
        type='BiasedMNIST', data_root=tiny_root, split=split,
        p_bias=P_PER_FACTOR if p == 'custom' else p, generate=GEN,
        group_by=group_by, primary_factor=primary))
    assert samples_digest(ds, tiny_root) == BIASED_MNIST_SAMPLES[key]


COLORED_MNIST_SAMPLES = {
    ('train', 'class_x_color'):
        '59f4f75bfc7d8f8f6ce5cda27ce7c255bb7ef00b35587cf45b268a8f6a5735a9',
    ('train', 'class_x_aligned'):
        'bc8772994f1d676b2fcbba770cf5f948c10946418c4f1bf2144860af10d2e5a3',
    ('test', 'class_x_color'):
        '817db4f95c840a72d842881042372cec723a6bf0179a129129b4b0780b2f2f61',
}


@pytest.mark.parametrize('key', sorted(COLORED_MNIST_SAMPLES))
def test_colored_mnist_samples_are_pinned(key):
    split, group_by = key
    ds = DATASETS.build(dict(
        type='ColoredMNIST', split=split, conflict_ratio=0.1,
        num_samples=40, image_size=14, seed=2, group_by=group_by))
    assert samples_digest(ds) == COLORED_MNIST_SAMPLES[key]


# after the pinned-files test, which checks the partial full_0.5 first
def test_generated_files_do_not_depend_on_cpu_features(tiny_root, tmp_path):
    generate_all(tiny_root)  # the sets already there are reused
    here = tree_digest(tiny_root)
    other = str(tmp_path / 'baseline_cpu')
    code = ('import sys; sys.path.insert(0, sys.argv[2]); from '
            'tests.test_datasets.test_dataset_digests import generate_all; '
            'generate_all(sys.argv[1])')
    proc = subprocess.run([sys.executable, '-c', code, other, REPO],
                          cwd=REPO,
                          env=baseline_cpu_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout
    there = tree_digest(other)
    assert sorted(there) == sorted(here)
    differ = sorted(f for f in here if here[f] != there[f])
    assert not differ, differ[:5]
