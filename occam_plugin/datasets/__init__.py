from . import transforms  # noqa: F401
from .bar import BAR  # noqa: F401,E402
from .biased_mnist import BiasedMNIST  # noqa: F401,E402
from .colored_mnist import ColoredMNIST  # noqa: F401,E402
from .coco_on_places import COCOOnPlaces  # noqa: F401,E402
from .latent_debias_dataset import LatentDebiasDataset  # noqa: F401,E402
from .binary_colored_mnist import BinaryColoredMNIST  # noqa: F401,E402
from .samplers import NoSingletonBatchSampler  # noqa: F401,E402
