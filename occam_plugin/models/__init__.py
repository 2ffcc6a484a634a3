from . import data_preprocessors  # noqa: F401
from . import classifiers, heads, losses, necks  # noqa: F401
from . import backbones  # noqa: F401
from . import generators, scorers  # noqa: F401
