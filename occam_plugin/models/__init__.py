from . import data_preprocessors  # noqa: F401
from . import classifiers, heads, losses, methods, necks  # noqa: F401
from . import backbones  # noqa: F401
from . import generators, scorers  # noqa: F401
from .occam_net import OccamNet, OccamOutput, create_occam_model  # noqa: E402,F401
