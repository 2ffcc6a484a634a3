"""Any image dataset with bias annotations in a file, and the base of the
published layouts (``waterbirds.py``, ``celeba.py``, ``subpopbench.py``).

The samples fill the data-sample contract of ``docs/architecture.md``
(``gt_label``, ``group_idx``, ``bias_label``, ``bias_aligned``, and for
several attributes ``bias_factors`` / ``bias_factors_aligned``), so
``PackBiasInputs``, ``BiasMetric`` and the methods that read groups
(GroupDRO, UpWt, PGI, the balanced samplers) work on it as on the built-in
datasets.
"""
import copy
import csv
import io
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .bias_annotation_utils import (DeclaredValues, is_missing, listed,
                                    norm_value, read_text)
from .bias_groups import group_metainfo
from .transforms.loading import real_path_outside

__all__ = ['BiasAnnotatedDataset', 'register_layout']

#: the split values a file read through ``columns`` alone has by default
DEFAULT_SPLIT_VALUES = dict(train='train', val='val', test='test')

#: file types by extension
FILE_TYPES = {'.csv': 'csv', '.tsv': 'tsv', '.json': 'json'}

#: ``format`` -> the class that reads that published layout
LAYOUTS: Dict[str, Type['BiasAnnotatedDataset']] = {}


def register_layout(name: str):
    """Class decorator: ``BiasAnnotatedDataset(format=name)`` builds the
    decorated subclass of :class:`BiasAnnotatedDataset`.

    Args:
        name (str): The ``format`` value of the layout.
    """

    def register(cls):
        if not (isinstance(cls, type) and
                issubclass(cls, BiasAnnotatedDataset)):
            raise TypeError(f'register_layout({name!r}): {cls!r} is not a '
                            'subclass of BiasAnnotatedDataset')
        if name in LAYOUTS and LAYOUTS[name] is not cls:
            raise KeyError(f'register_layout: format {name!r} is already '
                           f'read by {LAYOUTS[name].__module__}.'
                           f'{LAYOUTS[name].__name__}')
        cls.FORMAT = name
        LAYOUTS[name] = cls
        return cls

    return register


@DATASETS.register_module()
class BiasAnnotatedDataset(BaseDataset):
    """Images with a label, a split and any number of bias attributes, read
    from an annotation file.

    One row (CSV / TSV line, JSON object) per image. ``format`` reads a
    published layout, each a subclass registered with
    :func:`register_layout` that gives the defaults below as class
    attributes (and overrides :meth:`read_rows` where its files are not one
    CSV / TSV / JSON table):

    * ``'waterbirds'`` (:class:`Waterbirds`): group_DRO's ``metadata.csv``;
    * ``'celeba'`` (:class:`CelebA`): ``list_attr_celeba.txt`` +
      ``list_eval_partition.txt`` (or group_DRO's ``.csv`` of both);
    * ``'subpopbench'`` (:class:`SubpopBench`): SubpopBench's
      ``metadata.csv``.

    Anything else through ``columns`` (``img``, ``label``, ``split`` and a
    list of ``attributes``: column names) and ``split_values``. The values a
    label or attribute may take are declared (``label_values``,
    ``attribute_values``: a list, or a dict value -> name) or, undeclared,
    the distinct values in the whole file (all splits, so every split has
    the same groups), sorted.

    Groups are class x the values of the ``group_by`` attributes (default:
    all attributes): ``group_idx = (prod V) * class + code``, the code of the
    attribute values in mixed radix with the first attribute the least
    significant digit (group_DRO's CelebA grouping; one attribute:
    ``V * class + value``, as :mod:`.bias_groups`). Group names are
    ``'<class>/<value>[/<value> ...]'``. ``bias_label`` is the value index
    of the ``primary_attribute``; ``bias_aligned`` is set where ``aligned``
    gives a rule for it. With two attributes or more, every sample also
    carries ``bias_factors`` (all attributes) and ``bias_factors_aligned``
    (those with a rule). Without attributes the samples carry no bias keys.

    The annotation file is read by :meth:`load_data_list`; every row of the
    file is checked (split and declared values) and every row of the chosen
    split (image file present), and an error names the file, the line
    (JSON: the entry) and the column.

    Note:
        With ``lazy_init=True`` nothing is read until ``full_init``; the
        metainfo (classes, groups) is complete before that only when every
        value is declared (``label_values`` and the ``attribute_values`` of
        every attribute, as the Waterbirds and CelebA layouts do), else
        ``full_init`` completes it from the file.

    Args:
        ann_file (str): The annotation file, relative to ``data_root``.
            Defaults to the layout's (``metadata.csv``,
            ``list_attr_celeba.txt``).
        data_root (str): The dataset folder. Defaults to ''.
        split (str, optional): A key of ``split_values`` (``'train'``,
            ``'val'``, ``'test'``); None reads every row. Defaults to
            ``'train'``.
        format (str, optional): A registered layout (``'waterbirds'``,
            ``'celeba'``, ``'subpopbench'``), or None (``columns`` alone).
            Defaults to None.
        columns (dict, optional): Column names: ``img``, ``label``,
            ``split`` (None: the file has no split column; read it with
            ``split=None``) and ``attributes`` (a list). Merged over the
            layout's.
        split_values (dict, optional): Split name -> the value (or list of
            values) of the split column. Defaults to the layout's, else
            ``train``/``val``/``test``. A row whose value is in none is an
            error.
        label_values (list | dict, optional): The label values in class
            order (a dict: value -> class name). Defaults to the layout's,
            else those found.
        attribute_values (dict, optional): Attribute -> its values (a list,
            or a dict value -> name). Defaults to the layout's, else those
            found.
        group_by (Sequence[str], optional): Attributes of the groups.
            Defaults to all attributes.
        primary_attribute (str, optional): Attribute of ``bias_label`` /
            ``bias_aligned``. Defaults to the first of ``group_by`` (else of
            the attributes).
        aligned (dict, optional): Attribute -> when a sample is
            bias-aligned: ``'same_index'`` (the value's index is the class
            index) or a dict class (name or value) -> its aligned value(s)
            (name or value, or a list). Defaults to the layout's
            (Waterbirds: the bird's place), else none.
        data_prefix (str): Folder of the images, relative to ``data_root``.
            Defaults to the layout's (CelebA: ``img_align_celeba``), else ''.
        file_type (str, optional): ``'csv'``, ``'tsv'`` or ``'json'``.
            Defaults to the extension of ``ann_file``.
        check_files (bool): Check that the image of every row of the split
            exists (one ``os.path.exists`` per row). Defaults to True.
        allow_outside_root (bool): Accept image paths that resolve outside
            ``data_root`` (``../x.jpg``, ``/abs/x.jpg``, a symbolic link
            pointing out of it). Defaults to False: such a row is an error
            naming it, since an annotation file must not make training read
            any file of the machine.
        group_sep (str): Separator of group names. Defaults to ``'/'``.
        metainfo (dict, optional): Overrides of the metainfo; ``classes``
            renames the classes (group names follow).
        test_mode (bool, optional): Defaults to ``split in ('val', 'test')``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``pipeline``, ``indices``, ``lazy_init``, ...).
    """

    #: the layout's ``format`` (set by :func:`register_layout`); None: the
    #: column mapping alone
    FORMAT: Optional[str] = None
    #: the layout's defaults, overridden by the arguments of the same name
    #: (``COLUMNS`` and ``ATTRIBUTE_VALUES`` key by key)
    ANN_FILE: str = ''
    COLUMNS: dict = {}
    SPLIT_VALUES: dict = DEFAULT_SPLIT_VALUES
    LABEL_VALUES: Union[list, dict, None] = None
    ATTRIBUTE_VALUES: dict = {}
    ALIGNED: dict = {}
    DATA_PREFIX: str = ''

    def __new__(cls, *args, format: Optional[str] = None, **kwargs):
        # format='celeba' on the registered type builds the layout's class
        if cls is BiasAnnotatedDataset and format is not None:
            if format not in LAYOUTS:
                raise ValueError(
                    f'BiasAnnotatedDataset: format must be one of '
                    f'{sorted(LAYOUTS)} or None (columns alone), got '
                    f'{format!r}')
            cls = LAYOUTS[format]
        return super().__new__(cls)

    def __init__(self,
                 ann_file: str = '',
                 data_root: str = '',
                 split: Optional[str] = 'train',
                 format: Optional[str] = None,
                 columns: Optional[dict] = None,
                 split_values: Optional[dict] = None,
                 label_values: Union[list, dict, None] = None,
                 attribute_values: Optional[dict] = None,
                 group_by: Optional[Sequence[str]] = None,
                 primary_attribute: Optional[str] = None,
                 aligned: Optional[dict] = None,
                 data_prefix: Optional[str] = None,
                 file_type: Optional[str] = None,
                 check_files: bool = True,
                 allow_outside_root: bool = False,
                 group_sep: str = '/',
                 metainfo: Optional[dict] = None,
                 test_mode: Optional[bool] = None,
                 **kwargs):
        if format is not None and format != self.FORMAT:
            raise ValueError(
                f'{type(self).__name__} reads format={self.FORMAT!r}, got '
                f"format={format!r}; build type='BiasAnnotatedDataset' with "
                'the format instead')
        self.format = self.FORMAT
        self.split = split
        self.check_files = check_files
        self.allow_outside_root = bool(allow_outside_root)
        self.file_type = file_type
        self.group_sep = group_sep
        self.columns = dict(self.COLUMNS)
        self.columns.update(columns or {})
        self.columns['attributes'] = list(
            self.columns.get('attributes') or [])
        for key in ('img', 'label'):
            if not self.columns.get(key):
                raise ValueError(f'BiasAnnotatedDataset: columns needs '
                                 f'{key!r} (the column of the {key}), got '
                                 f'{self.columns}')
        self.split_values = dict(split_values or self.SPLIT_VALUES)
        ann_file = ann_file or self.ANN_FILE
        if not ann_file:
            raise ValueError('BiasAnnotatedDataset: give ann_file (the '
                             'annotation file) or a format')
        self.ann_path = (ann_file if osp.isabs(ann_file) or not data_root
                         else osp.join(data_root, ann_file))
        if data_prefix is None:
            data_prefix = self.DATA_PREFIX
        if split is not None and self.columns.get('split') is None:
            raise ValueError(
                f'BiasAnnotatedDataset: split={split!r} but columns has no '
                "'split' column; read the whole file with split=None")
        if split is not None and split not in self.split_values:
            raise ValueError(f'BiasAnnotatedDataset: split must be one of '
                             f'{sorted(self.split_values)} (the keys of '
                             f'split_values) or None, got {split!r}')
        attrs = self.columns['attributes']
        self._label_spec, self._attr_specs = self.value_specs(
            label_values if label_values is not None else self.LABEL_VALUES,
            dict(self.ATTRIBUTE_VALUES, **(attribute_values or {})))
        unknown = [a for a in self._attr_specs if a not in attrs]
        if unknown:
            raise ValueError(f'BiasAnnotatedDataset: attribute_values names '
                             f'{unknown}, which are not among the '
                             f'attributes {attrs}')
        self.group_by = list(attrs if group_by is None else group_by)
        unknown = [a for a in self.group_by if a not in attrs]
        if unknown:
            raise ValueError(f'BiasAnnotatedDataset: group_by {unknown} are '
                             f'not among the attributes {attrs}')
        if primary_attribute is None:
            primary_attribute = (self.group_by or attrs or [None])[0]
        elif primary_attribute not in attrs:
            raise ValueError(f'BiasAnnotatedDataset: primary_attribute '
                             f'{primary_attribute!r} is not among the '
                             f'attributes {attrs}')
        self.primary_attribute = primary_attribute
        self._aligned_spec = self.ALIGNED if aligned is None else aligned
        self._user_metainfo = metainfo
        # every value declared: the metainfo needs no file (lazy_init)
        self._values = None
        if self._label_spec is not None and all(
                self._attr_specs.get(a) is not None for a in attrs):
            self._declare_values([])
            metainfo = self._full_metainfo()
        if test_mode is None:
            test_mode = split in ('val', 'test')
        super().__init__(ann_file=self.ann_path, metainfo=metainfo,
                         data_root=data_root, data_prefix=data_prefix,
                         test_mode=test_mode, **kwargs)

    # ------------------------------------------------------------ layout
    def value_specs(self, label_spec, attr_specs: dict) -> Tuple:
        """The declared values of the label and of each attribute, from the
        arguments over the class attributes; a layout whose values follow
        from the columns (CelebA: -1 / +1 everywhere) fills them here.

        Args:
            label_spec (list | dict | None): The label's values.
            attr_specs (dict): Attribute -> its values.

        Returns:
            tuple: ``(label_spec, attr_specs)``.
        """
        return label_spec, attr_specs

    def annotation_columns(self) -> List[str]:
        """The columns read from the annotation file."""
        cols = [self.columns['img'], self.columns['label']]
        if self.columns.get('split') is not None:
            cols.append(self.columns['split'])
        return cols + self.columns['attributes']

    def read_rows(self) -> List[Tuple[str, dict]]:
        """``(where, {column: value})`` of every row of the file, ``where``
        naming the file and the line (JSON: the entry); the columns are
        :meth:`annotation_columns`."""
        path = self.ann_path
        kind = self.file_type or FILE_TYPES.get(osp.splitext(path)[1].lower())
        if kind not in ('csv', 'tsv', 'json'):
            raise ValueError(
                f'BiasAnnotatedDataset: {path!r}: cannot tell the file '
                f'type from its extension; name it .csv, .tsv or .json, '
                f"or set file_type='csv' | 'tsv' | 'json'")
        if kind == 'json':
            return self._read_json(path)
        return self._read_table(path, ',' if kind == 'csv' else '\t')

    # ------------------------------------------------------------ reading
    def _read_all_rows(self) -> List[Tuple[str, dict]]:
        path = self.ann_path
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'BiasAnnotatedDataset: annotation file {path!r} does not '
                f'exist (absolute: {osp.abspath(path)})' +
                (f'; format={self.format!r} expects it there'
                 if self.format else ''))
        rows = self.read_rows()
        if not rows:
            raise ValueError(f'BiasAnnotatedDataset: {path!r} has no rows')
        self._refuse_repeated_images(path, rows)
        return rows

    def _refuse_repeated_images(self, path: str, rows) -> None:
        """One row per image, over the whole file: a repeated row would
        weigh its image twice, or put it in two splits."""
        img_col = self.columns['img']
        first, bad = {}, []
        for where, cells in rows:
            key = osp.normpath(str(cells[img_col]).strip())
            if key in first:
                bad.append(f'{where}, column {img_col!r}: image '
                           f'{cells[img_col]!r} is already listed at '
                           f'{first[key]}')
            else:
                first[key] = where[len(path) + 2:] or where
        if bad:
            raise ValueError(
                f'BiasAnnotatedDataset: {len(bad)} repeated image(s) in '
                f'{path!r} (one row per image; to weigh samples, use '
                f'UpsampledDataset or a sampler):{listed(bad)}')

    def _missing_columns(self, path: str, found: Sequence[str]) -> None:
        needed = self.annotation_columns()
        missing = [c for c in needed if c not in found]
        if missing:
            raise ValueError(
                f'BiasAnnotatedDataset: {path!r} has no column(s) {missing} '
                f'(columns found: {list(found)}); set columns=dict(img=..., '
                'label=..., split=..., attributes=[...]) to the names in '
                'the file' +
                (f' (format={self.format!r} reads {needed})'
                 if self.format else ''))

    def _read_table(self, path: str, delimiter: str):
        with io.StringIO(read_text(path), newline='') as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise ValueError(f'BiasAnnotatedDataset: {path!r} is empty '
                                 '(expected a header line)')
            header = [h.strip() for h in header]
            self._missing_columns(path, header)
            pos = {c: header.index(c) for c in self.annotation_columns()}
            rows = []
            for line in reader:
                where = f'{path}, line {reader.line_num}'
                if not line or not any(cell.strip() for cell in line):
                    continue
                rows.append((where, self._cells(where, line, pos)))
        return rows

    @staticmethod
    def _cells(where: str, line: Sequence[str], pos: Dict[str, int]):
        out = {}
        for col, i in pos.items():
            if i >= len(line) or not line[i].strip():
                raise ValueError(f'BiasAnnotatedDataset: {where}, column '
                                 f'{col!r}: no value')
            out[col] = line[i].strip()
        return out

    def _read_json(self, path: str):
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as e:
            raise ValueError(f'BiasAnnotatedDataset: {path!r} is not '
                             f'valid JSON ({e})') from None
        if not isinstance(data, list) or not all(
                isinstance(r, dict) for r in data):
            raise ValueError(f'BiasAnnotatedDataset: {path!r}: expected a '
                             'JSON list of objects, one per image')
        needed = self.annotation_columns()
        rows = []
        for i, rec in enumerate(data):
            where = f'{path}, entry {i}'
            missing = [c for c in needed
                       if c not in rec or rec[c] is None or rec[c] == '']
            if missing:
                raise ValueError(
                    f'BiasAnnotatedDataset: {where}: no column(s) {missing} '
                    f'(keys: {sorted(rec)}); set columns=dict(img=..., '
                    'label=..., split=..., attributes=[...]) to the keys '
                    'in the file')
            rows.append((where, {c: rec[c] for c in needed}))
        return rows

    # ------------------------------------------------------------ values
    def _declare_values(self, rows) -> None:
        """The declared values of the label and every attribute (those not
        declared: found in ``rows``) and the class names."""
        cols = self.columns
        values = {}
        values['label'] = DeclaredValues(
            self._label_spec,
            [norm_value(r[cols['label']]) for _, r in rows],
            f'the label column {cols["label"]!r}')
        for a in cols['attributes']:
            values[a] = DeclaredValues(self._attr_specs.get(a),
                                       [norm_value(r[a]) for _, r in rows],
                                       f'the attribute {a!r}', f'{a}=')
        self._values = values
        classes = values['label'].names
        metainfo = self._user_metainfo
        if metainfo and metainfo.get('classes') is not None:
            if len(metainfo['classes']) != len(classes):
                raise ValueError(
                    f'BiasAnnotatedDataset: metainfo classes '
                    f'{list(metainfo["classes"])} name '
                    f'{len(metainfo["classes"])} classes, the label column '
                    f'{cols["label"]!r} has {len(classes)} values '
                    f'{values["label"].raw}')
            classes = [str(c) for c in metainfo['classes']]
        self._classes = tuple(classes)
        self._aligned = self._aligned_rules(self._aligned_spec)

    def _full_metainfo(self) -> dict:
        """Classes, groups and attributes, then the user's metainfo."""
        attrs = self.columns['attributes']
        meta = dict(self._user_metainfo or {})
        meta.pop('classes', None)
        extra = dict(attributes=attrs, group_by=self.group_by,
                     bias_factor_values={a: self._values[a].names
                                         for a in attrs})
        if len(attrs) > 1:
            extra['bias_factors'] = tuple(attrs)
        if self.group_by:
            return group_metainfo(self._classes,
                                  self._group_names(self.group_sep), meta,
                                  **extra)
        full = dict(classes=self._classes, **extra)
        full.update(meta)
        return full

    def _check_rows(self, rows) -> None:
        """Every row's split, label and attributes among the declared
        values, replaced by their indices (``_splits``: the split names)."""
        cols = self.columns
        attrs = cols['attributes']
        values = self._values
        split_index = {}
        for name, v in self.split_values.items():
            for raw in (v if isinstance(v, (list, tuple)) else [v]):
                split_index.setdefault(norm_value(raw), []).append(name)
        bad = []
        for where, cells in rows:
            if cols.get('split') is not None:
                s = norm_value(cells[cols['split']])
                if s not in split_index:
                    bad.append(f'{where}, column {cols["split"]!r}: split '
                               f'value {s!r} is not one of split_values '
                               f'{self.split_values}')
                cells['_splits'] = split_index.get(s, [])
            for key, col in [('label', cols['label'])] + \
                    [(a, a) for a in attrs]:
                v = norm_value(cells[col])
                idx = values[key].index.get(v)
                if idx is None:
                    bad.append(f'{where}, column {col!r}: value {v!r} is not '
                               f'one of the declared values '
                               f'{values[key].raw}')
                cells[key if key == 'label' else col] = idx
        if bad:
            raise ValueError(f'BiasAnnotatedDataset: {len(bad)} bad '
                             f'value(s) in the annotations:{listed(bad)}')

    def _refuse_missing_values(self, rows) -> None:
        """A ``nan`` / ``NA`` / ``null`` label or attribute cell (pandas'
        missing value) is an error, unless that column declares it: it
        would become a class or group of its own."""
        cols = self.columns
        checked = [(cols['label'], self._label_spec)] + [
            (a, self._attr_specs.get(a)) for a in cols['attributes']]
        declared = {col: {norm_value(k) for k in spec} if spec else set()
                    for col, spec in checked}
        bad = []
        for where, cells in rows:
            for col, _ in checked:
                v = cells[col]
                if is_missing(v) and norm_value(v) not in declared[col]:
                    bad.append(f'{where}, column {col!r}: {v!r} is a '
                               'missing value')
        if bad:
            raise ValueError(
                f'BiasAnnotatedDataset: {len(bad)} missing value(s) '
                '(NaN / NA / null) in label or attribute columns; every row '
                'needs a value: fill it or drop the row (or declare the '
                f'value in label_values / attribute_values):{listed(bad)}')

    def _aligned_rules(self, spec: dict) -> Dict[str, set]:
        """Attribute -> the set of aligned ``(class index, value index)``."""
        rules = {}
        attrs = self.columns['attributes']
        label = self._values['label']
        for attr, rule in (spec or {}).items():
            if attr not in attrs:
                raise ValueError(f'BiasAnnotatedDataset: aligned names '
                                 f'{attr!r}, not among the attributes '
                                 f'{attrs}')
            vals = self._values[attr]
            if rule == 'same_index':
                rules[attr] = {(i, i) for i in range(len(label.raw))}
                continue
            if not isinstance(rule, dict):
                raise ValueError(f"BiasAnnotatedDataset: aligned[{attr!r}] "
                                 "must be 'same_index' or a dict class -> "
                                 f'aligned value(s), got {rule!r}')
            pairs = set()
            for cls, aligned_values in rule.items():
                c = label.find(cls)
                if c is None and str(cls) in self._classes:
                    c = self._classes.index(str(cls))
                if c is None:
                    raise ValueError(
                        f'BiasAnnotatedDataset: aligned[{attr!r}] names the '
                        f'class {cls!r}, which is not one of '
                        f'{list(self._classes)} (values {label.raw})')
                if not isinstance(aligned_values, (list, tuple, set)):
                    aligned_values = [aligned_values]
                for v in aligned_values:
                    idx = vals.find(v)
                    if idx is None:
                        raise ValueError(
                            f'BiasAnnotatedDataset: aligned[{attr!r}] names '
                            f'the value {v!r}, which is not one of '
                            f'{vals.names} (values {vals.raw})')
                    pairs.add((c, idx))
            rules[attr] = pairs
        return rules

    # ------------------------------------------------------------ groups
    def _group_names(self, sep: str) -> List[str]:
        """Names in ``group_idx`` order (class-major; the first group
        attribute varies fastest)."""
        codes = [[]]
        for a in self.group_by:
            codes = [c + [n] for n in self._values[a].names for c in codes]
        return [sep.join([cls] + c) for cls in self._classes for c in codes]

    def _group(self, label: int, cells: dict) -> int:
        code, radix = 0, 1
        for a in self.group_by:
            code += cells[a] * radix
            radix *= len(self._values[a].raw)
        return label * radix + code

    def load_data_list(self) -> List[dict]:
        """Read and check the annotations; the rows of the split, their
        images checked."""
        rows = self._read_all_rows()
        self._refuse_missing_values(rows)
        if self._values is None:  # values found in the file
            self._declare_values(rows)
            # the class defaults under the values just read (what
            # BaseDataset.__init__ does with a metainfo argument)
            self._metainfo = {**copy.deepcopy(self.METAINFO),
                              **copy.deepcopy(self._full_metainfo())}
        self._check_rows(rows)
        cols = self.columns
        attrs = cols['attributes']
        data_list, missing, outside = [], [], []
        # the links of the root itself are resolved: a dataset folder may
        # be a link to another disk
        root = osp.realpath(self.data_root or os.curdir)
        for where, cells in rows:
            if self.split is not None and self.split not in cells['_splits']:
                continue
            img_path = osp.join(self.img_prefix, str(cells[cols['img']]))
            if not self.allow_outside_root:
                real = real_path_outside(img_path, (root, ))
                if real is not None:
                    outside.append(f'{where}, column {cols["img"]!r}: '
                                   f'{cells[cols["img"]]!r} is {real!r}')
                    continue
            if self.check_files and not osp.exists(img_path):
                missing.append(f'{where}, column {cols["img"]!r}: '
                               f'{img_path!r}')
                continue
            y = cells['label']
            info = dict(img_path=img_path, gt_label=y)
            if self.group_by:
                info['group_idx'] = self._group(y, cells)
            if self.primary_attribute is not None:
                p = self.primary_attribute
                info['bias_label'] = cells[p]
                if p in self._aligned:
                    info['bias_aligned'] = (y, cells[p]) in self._aligned[p]
            if len(attrs) > 1:
                info['bias_factors'] = {a: cells[a] for a in attrs}
                if self._aligned:
                    info['bias_factors_aligned'] = {
                        a: (y, cells[a]) in self._aligned[a]
                        for a in attrs if a in self._aligned}
            data_list.append(info)
        if outside:
            raise ValueError(
                f'BiasAnnotatedDataset: {len(outside)} image path(s) of '
                f'split {self.split!r} resolve outside data_root {root!r} '
                '(a ../ or absolute path, or a link out of it); move the '
                'images under data_root, or set allow_outside_root=True to '
                f'read them:{listed(outside)}')
        if missing:
            raise FileNotFoundError(
                f'BiasAnnotatedDataset: {len(missing)} image file(s) of '
                f'split {self.split!r} do not exist (images are read from '
                f'{self.img_prefix!r}: data_root + data_prefix + the '
                f'column):{listed(missing)}')
        if not data_list:
            raise ValueError(
                f'BiasAnnotatedDataset: {self.ann_path!r} has no row of split'
                f' {self.split!r} (split values {self.split_values})')
        return data_list

    def extra_repr(self) -> List[str]:
        return [f'Annotation file: \t{self.ann_path}',
                f'Format: \t{self.format or "columns"}',
                f'Split: \t{self.split}',
                f'Groups: \tclass x {self.group_by} '
                f'({self.metainfo.get("num_groups", 0)})']
