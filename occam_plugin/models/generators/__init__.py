from .conv_vae import ConvVAE  # noqa: F401
