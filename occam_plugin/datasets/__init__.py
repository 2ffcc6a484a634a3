from . import transforms  # noqa: F401
from .bar import BAR  # noqa: E402
from .biased_mnist import BiasedMNIST  # noqa: E402
from .colored_mnist import ColoredMNIST  # noqa: E402
from .coco_on_places import COCOOnPlaces  # noqa: E402
from .latent_debias_dataset import LatentDebiasDataset  # noqa: E402
from .binary_colored_mnist import BinaryColoredMNIST  # noqa: E402
from .samplers import NoSingletonBatchSampler  # noqa: E402
from .bias_annotated_dataset import BiasAnnotatedDataset  # noqa: E402
from .waterbirds import Waterbirds  # noqa: E402
from .celeba import CelebA  # noqa: E402
from .subpopbench import SubpopBench  # noqa: E402
from .group_balanced_sampler import GroupBalancedSampler  # noqa: E402
from .class_balanced_sampler import ClassBalancedSampler  # noqa: E402
from .upsampled_dataset import UpsampledDataset  # noqa: E402

__all__ = [
    'BAR', 'BiasedMNIST', 'ColoredMNIST', 'COCOOnPlaces',
    'LatentDebiasDataset', 'BinaryColoredMNIST', 'NoSingletonBatchSampler',
    'BiasAnnotatedDataset', 'Waterbirds', 'CelebA', 'SubpopBench',
    'GroupBalancedSampler', 'ClassBalancedSampler', 'UpsampledDataset'
]
