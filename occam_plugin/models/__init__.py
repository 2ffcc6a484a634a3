from . import classifiers, heads, losses, necks  # noqa: F401
