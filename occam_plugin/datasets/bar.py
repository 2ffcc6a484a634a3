"""BAR: Biased Action Recognition (Nam et al., NeurIPS 2020)."""
import logging
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .transforms.loading import check_image_files, real_path_outside

__all__ = ['BAR', 'BAR_CLASSES']

#: the six action classes, in the order of the official loaders
BAR_CLASSES = ('climbing', 'diving', 'fishing', 'pole vaulting', 'racing',
               'throwing')

#: file-name prefixes seen for each class (the official files use
#: ``pole vaulting_<id>.jpg``; the BAR README calls the class "Vaulting")
BAR_PREFIXES: Dict[str, str] = {
    'climbing': 'climbing',
    'diving': 'diving',
    'fishing': 'fishing',
    'pole vaulting': 'pole vaulting',
    'polevaulting': 'pole vaulting',
    'pole-vaulting': 'pole vaulting',
    'vaulting': 'pole vaulting',
    'racing': 'racing',
    'throwing': 'throwing',
}

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')

#: image formats BAR does not read: a split holding such a file is refused
#: (skipping it would silently drop samples of its class)
OTHER_IMAGE_EXTENSIONS = ('.gif', '.tif', '.tiff', '.heic', '.heif', '.avif',
                          '.jp2', '.j2k', '.jxl', '.jfif', '.ppm', '.pgm',
                          '.pbm', '.pnm', '.ico', '.svg', '.psd', '.dng',
                          '.raw', '.cr2', '.nef')

#: every VAL_EVERY-th image of a class (in the order of the ids in the file
#: names, starting with the first) is held out of ``train/`` as the val split
VAL_EVERY = 10

#: how many names a message lists before "... and N more"
MAX_LISTED = 10

BAR_SOURCE = (
    'BAR comes from Nam et al. 2020, "Learning from Failure" '
    '(https://github.com/alinlab/BAR). Expected layout: '
    'data/BAR/{train,test}/<class>_<id>.jpg, e.g. '
    'data/BAR/train/climbing_0.jpg, with <class> one of '
    f'{list(BAR_CLASSES)}.')


def _listed(names: List[str]) -> str:
    """The first :data:`MAX_LISTED` names, then how many more."""
    more = len(names) - MAX_LISTED
    return str(names[:MAX_LISTED]) + (f' and {more} more' if more > 0 else '')


@DATASETS.register_module()
class BAR(BaseDataset):
    """Biased Action Recognition: 6 actions, each photographed mostly in one
    kind of place (climbing/rock wall, diving/underwater, ...).

    The folder ``data_root/train/`` or ``data_root/test/`` holds the images;
    the class of an image is the part of its file name before the first
    ``_`` (``climbing_12.jpg`` → climbing). BAR has no bias annotations, so
    no bias keys are produced.

    BAR ships no validation split (the reference code validates on test), so
    one is carved out of ``train/`` by a fixed rule, stratified by class and
    free of randomness: within each class, the files sorted by the number in
    their name (``climbing_2`` before ``climbing_10``; names without a number
    after those, by name), every ``val_every``-th one starting with the first
    is ``split='val'`` and the rest is ``split='train'``. On the official
    files that is 196 val and 1,745 train images (val 33 / 52 / 17 / 28 / 34 /
    32 per class). ``split='trainval'`` reads the whole ``train/`` folder (the
    training set of the paper and of the reference code). Images are read
    with the extensions of :data:`IMG_EXTENSIONS`; an image of another
    format (``.gif``, ``.tif``, ...) or a broken symbolic link is an error,
    other entries
    (``.DS_Store``, notes, sub-folders) are ignored with a warning that lists
    them.

    Args:
        data_root (str): The BAR folder holding ``train/`` and ``test/``.
        split (str): ``'train'`` (``train/`` less the val images),
            ``'val'``, ``'trainval'`` (all of ``train/``) or ``'test'``.
            Defaults to ``'train'``.
        val_every (int): One image in ``val_every`` of each class of
            ``train/`` is a val image. Defaults to :data:`VAL_EVERY` (10).
        pipeline (Sequence): Transforms applied to each sample.
        test_mode (bool): Whether the dataset is used for testing (no refetch
            on a failed sample). Defaults to ``split == 'test'``.
        verify_images (bool): Decode every image of the split once when the
            dataset is built (with the pipeline's loading settings), so a
            corrupt file stops the run before training starts, all bad files
            named at once (the Runner builds the val dataloader before the
            first iteration); it costs one decode per image. False: a bad
            file is found when a batch first reads it. Defaults to True.
        allow_outside_root (bool): Read images that are symbolic links to
            files outside ``data_root``. Defaults to False: such a link is
            an error naming it (a folder of links must not make training
            read any file of the machine); a ``data_root`` that is itself a
            link, or holds linked ``train/`` / ``test/`` folders, is fine.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``indices``, ``lazy_init``, ...).
    """

    METAINFO = {'classes': BAR_CLASSES}
    SPLITS = ('train', 'val', 'trainval', 'test')
    #: the folder each split reads
    FOLDERS = dict(train='train', val='train', trainval='train', test='test')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 test_mode: Optional[bool] = None,
                 verify_images: bool = True,
                 val_every: int = VAL_EVERY,
                 allow_outside_root: bool = False,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'BAR: split must be one of {self.SPLITS}, '
                             f'got {split!r}.')
        if isinstance(val_every, bool) or not isinstance(val_every, int) \
                or val_every < 2:
            raise ValueError(f'BAR: val_every must be an integer >= 2 (one '
                             f'train/ image in val_every is a val image), '
                             f'got {val_every!r}.')
        self.val_every = val_every
        self.allow_outside_root = bool(allow_outside_root)
        if not data_root or not osp.isdir(data_root):
            raise FileNotFoundError(
                f'BAR: data root {data_root!r} does not exist '
                f'(absolute: {osp.abspath(data_root or ".")}). {BAR_SOURCE}')
        self.split = split
        self.verify_images = verify_images
        if test_mode is None:
            test_mode = split in ('val', 'test')
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix=self.FOLDERS[split],
            pipeline=pipeline,
            test_mode=test_mode,
            **kwargs)

    @staticmethod
    def class_of(file_name: str) -> Optional[str]:
        """The BAR class of a file name, or None if its prefix is unknown."""
        stem = osp.splitext(file_name)[0]
        prefix = stem.split('_')[0].lower()
        if prefix == 'pole' and stem.lower().startswith('pole_vaulting_'):
            prefix = 'pole vaulting'  # pole_vaulting_<id>: '_' inside name
        return BAR_PREFIXES.get(prefix)

    @staticmethod
    def id_key(file_name: str):
        """Sort key: the number after the last ``_`` (files without one after
        the numbered ones, by name)."""
        tail = osp.splitext(file_name)[0].rsplit('_', 1)[-1]
        return (0, int(tail), file_name) if tail.isdigit() else \
            (1, 0, file_name)

    def split_files(self, files: List[str]) -> List[str]:
        """The files of ``self.split`` among the images of a ``train/``
        folder (the rule of the class docstring); ``trainval`` and ``test``
        keep them all."""
        if self.split not in ('train', 'val'):
            return files
        by_class: Dict[str, List[str]] = {}
        for name in files:
            by_class.setdefault(self.class_of(name), []).append(name)
        val = {name for names in by_class.values()
               for k, name in enumerate(sorted(names, key=self.id_key))
               if k % self.val_every == 0}
        want_val = self.split == 'val'
        return [name for name in files if (name in val) == want_val]

    def load_data_list(self) -> List[dict]:
        """Scan ``data_root/split`` and label every image by its prefix."""
        folder = self.img_prefix
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'BAR: split folder {folder!r} is missing. {BAR_SOURCE}')
        files, other_images, ignored, broken = [], [], [], []
        for name in sorted(os.listdir(folder)):
            path = osp.join(folder, name)
            if osp.islink(path) and not osp.exists(path):
                broken.append(f'{name} -> {os.readlink(path)}')
            elif not osp.isfile(path):
                ignored.append(name + '/')
            elif name.lower().endswith(IMG_EXTENSIONS):
                files.append(name)
            elif name.lower().endswith(OTHER_IMAGE_EXTENSIONS):
                other_images.append(name)
            else:
                ignored.append(name)
        outside = [] if self.allow_outside_root else \
            self._outside_root(folder, files + other_images)
        if outside:
            raise ValueError(
                f'BAR: split folder {folder!r} holds {len(outside)} '
                'symbolic link(s) to files outside the data root '
                f'{osp.realpath(self.data_root)!r}: {_listed(outside)}. Copy '
                'the images into the folder, or set allow_outside_root=True '
                'in the dataset config to read them.')
        if broken:
            # a link to an image that is gone: a missing sample, not a folder
            raise FileNotFoundError(
                f'BAR: split folder {folder!r} holds {len(broken)} broken '
                f'symbolic link(s), whose targets do not exist: '
                f'{_listed(broken)}. Restore the files they point to (a '
                'moved or unmounted dataset copy?) or remove the links.')
        if other_images:
            raise ValueError(
                f'BAR: split folder {folder!r} holds {len(other_images)} '
                f'image(s) in a format BAR does not read: '
                f'{_listed(other_images)}. Supported extensions: '
                f'{", ".join(IMG_EXTENSIONS)}; convert these files (e.g. to '
                '.jpg) or move them out of the folder.')
        if ignored:
            # .DS_Store, README.txt, sub-folders: harmless, but say so
            print_log(
                f'BAR: split folder {folder!r}: ignoring {len(ignored)} '
                f'entr(ies) that are not images ({", ".join(IMG_EXTENSIONS)})'
                f': {_listed(ignored)}', logger='current',
                level=logging.WARNING)
        if not files:
            raise FileNotFoundError(
                f'BAR: split folder {folder!r} holds no images '
                f'({", ".join(IMG_EXTENSIONS)}). {BAR_SOURCE}')

        classes = list(self.metainfo['classes'])
        data_list = []
        for name in files:
            cls = self.class_of(name)
            if cls is None or cls not in classes:
                raise ValueError(
                    f'BAR: file {osp.join(folder, name)!r} has an unknown '
                    f'class prefix {name.split("_")[0]!r}; the name must be '
                    f'<class>_<id>.<ext> with <class> one of {classes} '
                    f'(also accepted: {sorted(BAR_PREFIXES)}).')
            data_list.append(
                dict(img_path=osp.join(folder, name),
                     gt_label=classes.index(cls)))
        kept = set(self.split_files(files))
        data_list = [info for info in data_list
                     if osp.basename(info['img_path']) in kept]

        counts = [0] * len(classes)
        for info in data_list:
            counts[info['gt_label']] += 1
        empty = [c for c, n in zip(classes, counts) if n == 0]
        if empty:
            held = ''
            if self.split in ('train', 'val'):
                held = (f' The {self.split!r} split holds '
                        f'{"one" if self.split == "val" else "all but one"}'
                        f' in {self.val_every} images of each class of '
                        f'{folder!r}; a class needs at least '
                        f'{1 if self.split == "val" else 2} there.')
            raise ValueError(
                f'BAR: split {self.split!r} of folder {folder!r} has no '
                f'images of class(es) {empty} (images per class: '
                f'{dict(zip(classes, counts))}); every one of the '
                f'{len(classes)} classes needs images.{held} {BAR_SOURCE}')
        if self.verify_images:
            self._check_images([info['img_path'] for info in data_list])
        return data_list

    def _outside_root(self, folder: str, names: List[str]) -> List[str]:
        # the split folder's own links are resolved: it may live on
        # another disk, as may data_root
        roots = {osp.realpath(self.data_root), osp.realpath(folder)}
        outside = []
        for name in names:
            real = real_path_outside(osp.join(folder, name), roots)
            if real is not None:
                outside.append(f'{name} -> {real}')
        return outside

    def _check_images(self, paths: List[str]) -> None:
        """Decode every image once, as the pipeline's loader would."""
        loader = next((t for t in getattr(self.pipeline, 'transforms', [])
                       if isinstance(t, LoadImageFromFile)), None)
        start = time.perf_counter()
        try:
            check_image_files(paths, loader, max_listed=MAX_LISTED)
        except ValueError as err:
            raise ValueError(
                f'BAR: split folder {self.img_prefix!r}: {err}\nSet '
                'verify_images=False in the dataset config to defer this '
                'check to the first read of each file.') from None
        print_log(f'BAR: decoded all {len(paths)} images of '
                  f'{self.img_prefix!r} in {time.perf_counter() - start:.1f}'
                  ' s', logger='current')

    def extra_repr(self) -> List[str]:
        return [f'Split: \t{self.split}',
                f'Data root: \t{self.data_root}']
