from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    """``LoadImageFromFile`` that names the file when it cannot be decoded.

    mmcv's loader either re-raises a bare decoder error or fails an assert;
    in a long run over thousands of files the user needs to know which file is
    broken and what to do about it.

    Args:
        **kwargs: Arguments of :class:`mmcv.transforms.LoadImageFromFile`
            (``to_float32``, ``color_type``, ``imdecode_backend``,
            ``backend_args``, ``ignore_empty``).
    """

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except Exception as e:
            if self.ignore_empty:
                return None
            raise FileNotFoundError(
                f'Cannot read image file {filename!r}: {e}') from e
        img = None
        error = None
        if img_bytes:
            try:
                img = mmcv.imfrombytes(img_bytes, flag=self.color_type,
                                       backend=self.imdecode_backend)
            except Exception as e:  # decoder-specific errors (PIL, turbojpeg)
                error = e
        if img is None or not isinstance(img, np.ndarray) or img.size == 0:
            if self.ignore_empty:
                return None
            raise ValueError(
                f'Corrupt image: {filename!r} ({len(img_bytes)} bytes) could '
                f'not be decoded as an image by the {self.imdecode_backend!r} '
                f'backend{f" ({error})" if error else ""}. Replace or delete '
                'the file (re-extract the dataset).')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
