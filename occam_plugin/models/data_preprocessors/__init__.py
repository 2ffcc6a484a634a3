from .channels_last_data_preprocessor import ChannelsLastDataPreprocessor

__all__ = ['ChannelsLastDataPreprocessor']
