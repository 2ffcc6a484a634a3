"""Biased MNIST v2 (Shrestha et al., WACV 2022): the reader of the released
layout, which our generator (:mod:`.biased_mnist_generator`) also writes.

Layout under ``data_root`` (as the reference loader reads it)::

    train_ixs.json, val_ixs.json          indices into a trainval set
    full_<p>/trainval.json                 one dict per image: index, digit,
    full_<p>/trainval/<index>.jpg          digit_color_ix, digit_scale_ix, ...
    full/test.json, full/test/<index>.jpg  the unbiased test set (p = 0.1)

``split='train'`` reads ``full_<p_bias>`` at ``train_ixs``, ``'val'`` reads
``full_<val_p_bias>`` at ``val_ixs`` (the reference validates on
``full_0.5``), ``'test'`` reads ``full``. Index files inside ``full_<p>/``
take precedence over those in the root, as in the reference.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmengine import dist
from mmengine.logging import print_log

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from . import biased_mnist_generator as gen
from .bias_groups import (bias_fields, check_group_by, class_x_bias_group,
                          class_x_bias_names, group_metainfo)
from .biased_mnist_generator import FACTOR_KEYS, FACTORS, NUM_VALUES
from .transforms.loading import real_path_outside

__all__ = ['factor_value_names', 'BiasedMNIST']

CLASSES = tuple(str(i) for i in range(10))
SPLITS = ('train', 'val', 'test')


def factor_value_names(released: bool, num_cells: int = 5) -> dict:
    """Names of every factor's values. Our position value is the digit's
    top-left cell; the released json repeats the scale index there."""
    names = {
        'digit_color': [f'color{i}' for i in range(NUM_VALUES)],
        'digit_scale': [f'x{s:.2f}' for s in gen.digit_scales(num_cells)],
        'texture': [repr(t) for t in gen.TEXTURES],
        'texture_color': [f'color{i}' for i in range(NUM_VALUES)],
        'letter': list(gen.LETTERS),
        'letter_color': [f'color{i}' for i in range(NUM_VALUES)],
    }
    names['digit_position'] = (
        [f'scale{i}' for i in range(NUM_VALUES)] if released else
        [f'r{r}c{c}' for r in range(num_cells) for c in range(num_cells)])
    return {f: names[f] for f in FACTORS}


@DATASETS.register_module()
class BiasedMNIST(BaseDataset):
    """Biased MNIST v2: the released data, or ours generated on first use.

    Each sample carries ``gt_label`` (the digit), ``bias_factors`` (the
    value of each of the 7 factors), ``bias_factors_aligned`` (whether the
    factor shows the value tied to the class: the value equals the class
    index, or for our generated position, the cell is the canonical cell of
    the class's scale), ``bias_label`` / ``bias_aligned`` (the same for
    ``primary_factor``) and ``group_idx``:

    * ``'class_x_primary'`` (default): ``class * V + value`` of the primary
      factor (V its number of values): on the unbiased test split the mean
      group accuracy is the unbiased accuracy;
    * ``'class_x_aligned'``: ``2 * class + (0 aligned / 1 conflicting)``.

    Args:
        data_root (str): Folder in the released layout (a download of the
            released data, or where ours is generated).
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        p_bias (float | dict | list): Train bias: which ``full_<p>`` set the
            train split reads (and generates); one float, one per factor
            (a dict, or a list in factor order; see
            :data:`~.biased_mnist_generator.P_BIAS_FORMS`). Defaults to 0.95.
        val_p_bias (float): Which ``full_<p>`` set the val split reads.
            Defaults to 0.5, as the reference.
        generate (dict, optional): Generate what is missing with these
            arguments of :func:`~.biased_mnist_generator.generation_params`
            (``num_trainval``, ``num_test``, ``num_cells``, ``image_size``,
            ``seed``, ``mnist_root``). ``None`` reads released data only.
        primary_factor (str): Factor of ``bias_label`` / groups. Defaults
            to 'digit_color'.
        group_by (str): 'class_x_primary' or 'class_x_aligned'.
        allow_outside_root (bool): Read images that are symbolic links to
            files outside ``data_root`` (and outside their image folder).
            Defaults to False: such a link is an error naming it, so a
            folder of links cannot make training read any file of the
            machine; a linked ``data_root`` or image folder is fine.
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``,
            ``test_mode``, ``indices``, ...).
    """
    METAINFO = dict(classes=CLASSES)
    GROUP_BY = ('class_x_primary', 'class_x_aligned')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 p_bias: Union[float, Dict[str, float], List[float]] = 0.95,
                 val_p_bias: float = 0.5,
                 generate: Optional[dict] = None,
                 primary_factor: str = 'digit_color',
                 group_by: str = 'class_x_primary',
                 metainfo: Optional[dict] = None,
                 allow_outside_root: bool = False,
                 **kwargs):
        self.allow_outside_root = bool(allow_outside_root)
        if split not in SPLITS:
            raise ValueError(f'BiasedMNIST split must be one of {SPLITS}, '
                             f'got {split!r}')
        if primary_factor not in FACTORS:
            raise ValueError(f'primary_factor must be one of {FACTORS}, got '
                             f'{primary_factor!r}')
        check_group_by(group_by, self.GROUP_BY)
        if generate is not None and not isinstance(generate, dict):
            raise TypeError('generate must be None (read released data) or '
                            'a dict of generation arguments, got '
                            f'{type(generate).__name__}')
        self.split = split
        self.p_bias = p_bias
        self.val_p_bias = val_p_bias
        self.generate = dict(generate) if generate is not None else None
        self.gen_params = (gen.generation_params(**self.generate)
                           if self.generate is not None else None)
        gen.p_tag(p_bias)  # fail early on a bad p_bias
        gen.p_tag(val_p_bias)
        self.primary_factor = primary_factor
        self.group_by = group_by
        values = factor_value_names(
            released=self.generate is None,
            num_cells=(self.gen_params or {}).get('num_cells', 5))
        names = class_x_bias_names(
            CLASSES, group_by,
            [f'{primary_factor}={v}' for v in values[primary_factor]])
        meta = group_metainfo(CLASSES, names, metainfo, bias_factors=FACTORS,
                              bias_factor_values=values)
        super().__init__(ann_file='', data_root=data_root, metainfo=meta,
                         **kwargs)

    # ------------------------------------------------------------ files
    def _files(self):
        """(json file, image folder, index file or None) of this split."""
        root = self.data_root
        if self.split == 'test':
            folder = osp.join(root, 'full')
            return (osp.join(folder, 'test.json'), osp.join(folder, 'test'),
                    None)
        p = self.p_bias if self.split == 'train' else self.val_p_bias
        folder = osp.join(root, gen.p_tag(p))
        ixs = f'{self.split}_ixs.json'
        ix_file = osp.join(folder, ixs)
        if not osp.isfile(ix_file):
            ix_file = osp.join(root, ixs)
        return (osp.join(folder, 'trainval.json'),
                osp.join(folder, 'trainval'), ix_file)

    def _prepare(self):
        """Generate what is missing (our data), or check a release."""
        root = self.data_root
        ours = osp.isfile(osp.join(root, 'generation.json'))
        if self.generate is None:
            if ours:
                raise ValueError(
                    f'{root} holds data generated by occam_plugin '
                    '(generation.json): pass the `generate` arguments it '
                    'was made with, so its params are checked.')
            return
        if not ours and osp.isdir(root) and any(
                osp.exists(osp.join(root, n))
                for n in ('train_ixs.json', 'full')):
            raise ValueError(
                f'{root} holds Biased MNIST data without generation.json '
                '(a released download?): read it with generate=None, or '
                'choose another data_root for generated data.')
        if dist.is_main_process():
            print_log(f'BiasedMNIST: preparing {root} (generated once, then '
                      'reused)', logger='current')
            gen.generate_biased_mnist(root, p_bias=self.p_bias,
                                      val_p_bias=self.val_p_bias,
                                      splits=(self.split, ),
                                      **self.generate)
        dist.barrier()

    def load_data_list(self):
        root = self.data_root
        if not root:
            raise ValueError('BiasedMNIST needs a data_root (the released '
                             'layout, or where to generate it)')
        self._prepare()
        json_file, img_dir, ix_file = self._files()
        missing = [p for p in (json_file, img_dir, ix_file)
                   if p is not None and not osp.exists(p)]
        if missing:
            raise FileNotFoundError(
                f'BiasedMNIST {self.split} split: missing {missing} under '
                f'{root}. Expected the released layout: train_ixs.json, '
                'val_ixs.json, full_<p>/trainval.json + full_<p>/trainval/'
                '<index>.jpg, full/test.json + full/test/<index>.jpg '
                f'(train reads full_<p_bias={self.p_bias}>, val reads '
                f'full_<val_p_bias={self.val_p_bias}>). A partial download? '
                'Fetch the missing part, or set `generate` to make the data.')
        records = gen.read_json(json_file)
        if not isinstance(records, list) or not records:
            raise ValueError(f'{json_file}: expected a non-empty list of '
                             'per-image dicts')
        positions = list(range(len(records)))  # entries of json_file
        if ix_file is not None:
            ixs = gen.read_json(ix_file)
            bad = [i for i in ixs
                   if not isinstance(i, int) or not 0 <= i < len(records)]
            if bad:
                raise ValueError(
                    f'{ix_file}: {len(bad)} indices outside the '
                    f'{len(records)} images of {json_file} (e.g. {bad[:3]}):'
                    ' index and image files of different downloads?')
            records = [records[i] for i in ixs]
            positions = list(ixs)
        canon_cells = None
        if self.gen_params is not None:  # ours: class -> canonical cell
            k = self.gen_params['num_cells']
            canon = gen.canonical_positions(k, self.gen_params['seed'])
            canon_cells = [canon[c][0][0] * k + canon[c][0][1]
                           for c in range(NUM_VALUES)]
        present = set(os.listdir(img_dir))
        if not self.allow_outside_root:
            self._refuse_links_out(img_dir, json_file)
        data_list, absent = [], []
        needed = ('index', 'digit') + tuple(FACTOR_KEYS.values())
        for rec in records:
            lack = [k for k in needed if k not in rec]
            if lack:
                raise ValueError(f'{json_file}: an entry lacks the keys '
                                 f'{lack} (has {sorted(rec)})')
        self._check_values(records, positions, json_file)
        # once: ``self.metainfo`` is a deep copy of the whole metainfo
        n_values = len(self.metainfo['bias_factor_values'][
            self.primary_factor])
        for rec in records:
            name = f'{rec["index"]}.jpg'
            if name not in present:
                absent.append(name)
                continue
            data_list.append(self._data_info(rec, osp.join(img_dir, name),
                                             canon_cells, n_values))
        if absent:
            raise FileNotFoundError(
                f'{img_dir}: {len(absent)} of {len(records)} images listed '
                f'in {json_file} are missing (e.g. {absent[:3]}): a partial '
                'download or an interrupted copy.')
        return data_list

    def _refuse_links_out(self, img_dir: str, json_file: str) -> None:
        # only links can leave the folder: a json index names a file of
        # the listing, never a path
        roots = {osp.realpath(self.data_root), osp.realpath(img_dir)}
        outside = []
        with os.scandir(img_dir) as entries:
            for entry in entries:
                real = real_path_outside(entry.path, roots) \
                    if entry.is_symlink() else None
                if real is not None:
                    outside.append(f'{entry.name} -> {real}')
        if outside:
            raise ValueError(
                f'{img_dir}: {len(outside)} image(s) of {json_file} are '
                'symbolic links to files outside the data root '
                f'{osp.realpath(self.data_root)!r} (e.g. '
                f'{sorted(outside)[:3]}); copy the images in, or set '
                'allow_outside_root=True in the dataset config to read '
                'them.')

    def _check_values(self, records: List[dict], positions: List[int],
                      json_file: str, max_listed: int = 5) -> None:
        """Every label (``digit``) in ``[0, 10)`` and every factor value in
        ``[0, V)`` (V the factor's number of values), integers: a value out
        of range would end in ``cross_entropy``'s IndexError in training or
        in BiasMetric's group check after a whole test loop, naming neither
        the file nor the entry."""
        ranges = {'digit': (len(CLASSES), 'the classes 0-9')}
        values = self.metainfo['bias_factor_values']
        for f in FACTORS:
            n = len(values[f])
            ranges[FACTOR_KEYS[f]] = (n, f'the {n} values of {f}')
        bad = []
        for pos, rec in zip(positions, records):
            for key, (n, what) in ranges.items():
                v = rec[key]
                integral = (isinstance(v, int) and not isinstance(v, bool)) \
                    or (isinstance(v, float) and v.is_integer())
                if not integral or not 0 <= v < n:
                    bad.append(f'entry {pos} (index {rec["index"]!r}): '
                               f'{key}={v!r}, expected an integer in [0, {n}) '
                               f'({what})')
        if bad:
            more = len(bad) - max_listed
            raise ValueError(
                f'{json_file}: {len(bad)} value(s) out of range:\n  ' +
                '\n  '.join(bad[:max_listed]) +
                (f'\n  ... and {more} more' if more > 0 else '') +
                '\nA damaged or edited file, or one of another dataset: '
                're-download (or re-generate) it, or fix these entries.')

    def _data_info(self, rec: dict, img_path: str, canon_cells,
                   n_values: int) -> dict:
        y = int(rec['digit'])
        factors = {f: int(rec[FACTOR_KEYS[f]]) for f in FACTORS}
        aligned = {f: factors[f] == y for f in FACTORS}
        if canon_cells is not None:
            aligned['digit_position'] = (
                factors['digit_position'] == canon_cells[y])
        primary = self.primary_factor
        group = class_x_bias_group(self.group_by, y, factors[primary],
                                   aligned[primary], n_values)
        return dict(img_path=img_path, gt_label=y,
                    **bias_fields(group, factors, aligned, primary))

    def extra_repr(self) -> Sequence[str]:
        return [
            f'Split: \t{self.split}',
            f'p_bias: \t{self.p_bias} (val reads {self.val_p_bias})',
            f'Generation: \t{self.generate or "released data (read only)"}',
            f'Groups: \t{self.group_by} ({self.metainfo["num_groups"]})'
        ]
