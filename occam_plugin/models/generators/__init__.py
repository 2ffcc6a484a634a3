from .conv_vae import ConvVAE

__all__ = ['ConvVAE']
