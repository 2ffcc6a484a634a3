"""Any image dataset with bias annotations in a file: the layouts of the
spurious-correlation benchmarks (kohpangwei/group_DRO's Waterbirds and
CelebA, YyzHarry/SubpopBench's ``metadata.csv``) as they are published, and
any CSV / TSV / JSON file through a column mapping.

The samples fill the data-sample contract of ``docs/architecture.md``
(``gt_label``, ``group_idx``, ``bias_label``, ``bias_aligned``, and for
several attributes ``bias_factors`` / ``bias_factors_aligned``), so
``PackBiasInputs``, ``BiasMetric`` and the methods that read groups
(GroupDRO, UpWt, PGI, the balanced samplers) work on it as on the built-in
datasets.
"""
import csv
import io
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .bias_groups import group_metainfo
from .transforms.loading import real_path_outside

__all__ = ['read_text', 'BiasAnnotatedDataset']

#: how many rows an error lists before "... and N more"
MAX_LISTED = 10

#: the split values of the three published layouts (0/1/2)
SPLITS_012 = dict(train=0, val=1, test=2)

#: what each ``format`` reads: the column mapping, the declared values and
#: the files; a user's ``columns`` / ``*_values`` / ``aligned`` / files
#: override these key by key
FORMATS = dict(
    # kohpangwei/group_DRO: data/cub_dataset.py reads
    # <root>/metadata.csv (img_id,img_filename,y,split,place,
    # place_filename); images <root>/<img_filename>; group = 2 y + place
    waterbirds=dict(
        ann_file='metadata.csv',
        columns=dict(img='img_filename', label='y', split='split',
                     attributes=['place']),
        split_values=SPLITS_012,
        label_values={0: 'landbird', 1: 'waterbird'},
        attribute_values=dict(place={0: 'land', 1: 'water'}),
        aligned=dict(place={'landbird': 'land', 'waterbird': 'water'})),
    # the CelebA release (as SubpopBench's download script reads it):
    # list_attr_celeba.txt = count line, header line of the 40 attribute
    # names, then '<image> <+1/-1 x 40>'; list_eval_partition.txt =
    # '<image> <0|1|2>'; images img_align_celeba/<image>. group_DRO reads
    # the same tables as CSV (list_attr_celeba.csv with an image_id column,
    # list_eval_partition.csv: image_id,partition): a .csv ann_file.
    # -1 is value 0, +1 value 1 (group_DRO: attrs[attrs == -1] = 0).
    celeba=dict(
        ann_file='list_attr_celeba.txt',
        split_file='list_eval_partition.txt',
        data_prefix='img_align_celeba',
        columns=dict(img='image_id', label='Blond_Hair', split='partition',
                     attributes=['Male']),
        split_values=SPLITS_012),
    # YyzHarry/SubpopBench: metadata.csv = id,filename,split,y,a; images
    # <root>/<filename>; group = (number of a values) y + a
    subpopbench=dict(
        ann_file='metadata.csv',
        columns=dict(img='filename', label='y', split='split',
                     attributes=['a']),
        split_values=SPLITS_012),
)

#: the split values a file read through ``columns`` alone has by default
DEFAULT_SPLIT_VALUES = dict(train='train', val='val', test='test')

#: file types by extension
FILE_TYPES = {'.csv': 'csv', '.tsv': 'tsv', '.json': 'json'}

Value = Union[int, str]

#: cells that mean "no value" (pandas' and spreadsheets' spellings of a
#: missing value, lower case): refused in a label / attribute / split column
#: unless declared in its values, since they would make a class or group
#: named 'nan'
MISSING_MARKERS = frozenset(
    {'nan', '-nan', 'na', 'n/a', '#n/a', '<na>', 'null', 'none'})


def _is_missing(value) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or (isinstance(value, str) and
                             value.strip().lower() in MISSING_MARKERS)


def read_text(path: str, owner: str = 'BiasAnnotatedDataset') -> str:
    """The file as UTF-8 text (a byte-order mark dropped); another
    encoding is an error naming the file, the line and the byte.

    Args:
        path (str): The file.
        owner (str): The reader named in the message.
    """
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        line = data.count(b'\n', 0, e.start) + 1
        raise ValueError(
            f'{owner}: {path!r} is not UTF-8: byte {e.start} (line {line}) '
            f'is {data[e.start:e.start + 1]!r} ({e.reason}); re-save the '
            'file as UTF-8 (e.g. iconv -f latin1 -t utf-8)') from None


def _norm(value) -> Value:
    """A cell of the file (or a value of the config) as an int when it is
    an integer (``'1'``, ``'+1'``, ``1.0``, ``True``), else a stripped
    string: ``'1'`` in a CSV matches ``1`` in the config."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else repr(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else text


def _sort_key(value: Value):
    return (isinstance(value, str), value)


def _listed(items: List[str]) -> str:
    more = len(items) - MAX_LISTED
    return ('\n  ' + '\n  '.join(items[:MAX_LISTED]) +
            (f'\n  ... and {more} more' if more > 0 else ''))


class _Declared:
    """The declared values of a column: raw value -> index, and names.

    Args:
        spec (list | dict | None): Raw values in index order, or a dict raw
            value -> name (in index order); None: the sorted distinct values
            found in the whole file.
        found (list): The values of the column in the file.
        what (str): Column description for messages.
        number_prefix (str): Prefix of the name of a number value without a
            declared name (``'place='``); strings are their own names.
    """

    def __init__(self, spec, found: Sequence[Value], what: str,
                 number_prefix: str = ''):
        if spec is None:
            raw = sorted(set(found), key=_sort_key)
            names = None
        elif isinstance(spec, dict):
            raw = [_norm(k) for k in spec]
            names = [str(v) for v in spec.values()]
        elif isinstance(spec, (list, tuple)):
            raw = [_norm(k) for k in spec]
            names = None
        else:
            raise TypeError(f'BiasAnnotatedDataset: the values of {what} '
                            'must be a list of values or a dict value -> '
                            f'name, got {type(spec).__name__}')
        if len(set(raw)) != len(raw):
            raise ValueError(f'BiasAnnotatedDataset: the values of {what} '
                             f'repeat a value: {raw}')
        if not raw:
            raise ValueError(f'BiasAnnotatedDataset: {what} has no values')
        self.raw = raw
        self.index = {v: i for i, v in enumerate(raw)}
        self.names = names or [
            v if isinstance(v, str) else f'{number_prefix}{v}' for v in raw]

    def find(self, key) -> Optional[int]:
        """Index of a raw value or a name, None if neither."""
        idx = self.index.get(_norm(key))
        if idx is None and str(key) in self.names:
            idx = self.names.index(str(key))
        return idx


@DATASETS.register_module()
class BiasAnnotatedDataset(BaseDataset):
    """Images with a label, a split and any number of bias attributes, read
    from an annotation file.

    One row (CSV / TSV line, JSON object) per image. ``format`` reads a
    published layout (see :data:`FORMATS`):

    * ``'waterbirds'``: group_DRO's ``metadata.csv`` (``img_id,
      img_filename,y,split,place,place_filename``, split 0/1/2 = train/val/
      test), classes landbird / waterbird, attribute ``place`` (land /
      water), aligned when the place is the bird's (4 groups,
      ``landbird/land`` ...);
    * ``'celeba'``: ``list_attr_celeba.txt`` + ``list_eval_partition.txt``
      (or group_DRO's ``.csv`` of both), images under
      ``img_align_celeba/``; the target and the protected attribute(s) are
      attribute names: ``columns=dict(label='Blond_Hair',
      attributes=['Male'])`` (the default); -1 is value 0, +1 value 1;
    * ``'subpopbench'``: SubpopBench's ``metadata.csv`` (``id,filename,
      split,y,a``, split 0/1/2).

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

    The annotation file is read when the dataset is built (also with
    ``lazy_init``: the metainfo needs the values); every row of the chosen
    split is checked (values declared, image file present) before training
    starts, and an error names the file, the line (JSON: the entry) and the
    column.

    Args:
        ann_file (str): The annotation file, relative to ``data_root``.
            Defaults to the format's (``metadata.csv``,
            ``list_attr_celeba.txt``).
        data_root (str): The dataset folder. Defaults to ''.
        split (str, optional): A key of ``split_values`` (``'train'``,
            ``'val'``, ``'test'``); None reads every row. Defaults to
            ``'train'``.
        format (str, optional): ``'waterbirds'``, ``'celeba'``,
            ``'subpopbench'``, or None (``columns`` alone). Defaults to None.
        columns (dict, optional): Column names: ``img``, ``label``,
            ``split`` (None: the file has no split column; read it with
            ``split=None``) and ``attributes`` (a list). Merged over the
            format's.
        split_values (dict, optional): Split name -> the value (or list of
            values) of the split column. Defaults to the format's, else
            ``train``/``val``/``test``. A row whose value is in none is an
            error.
        label_values (list | dict, optional): The label values in class
            order (a dict: value -> class name). Defaults to the format's,
            else those found.
        attribute_values (dict, optional): Attribute -> its values (a list,
            or a dict value -> name). Defaults to the format's, else those
            found.
        group_by (Sequence[str], optional): Attributes of the groups.
            Defaults to all attributes.
        primary_attribute (str, optional): Attribute of ``bias_label`` /
            ``bias_aligned``. Defaults to the first of ``group_by`` (else of
            the attributes).
        aligned (dict, optional): Attribute -> when a sample is
            bias-aligned: ``'same_index'`` (the value's index is the class
            index) or a dict class (name or value) -> its aligned value(s)
            (name or value, or a list). Defaults to the format's
            (Waterbirds: the bird's place), else none.
        split_file (str, optional): CelebA's partition file, relative to
            ``data_root``. Defaults to ``list_eval_partition.txt`` (``.csv``
            for a ``.csv`` ann_file).
        data_prefix (str): Folder of the images, relative to ``data_root``.
            Defaults to the format's (CelebA: ``img_align_celeba``), else ''.
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

    FORMATS = FORMATS

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
                 split_file: Optional[str] = None,
                 data_prefix: Optional[str] = None,
                 file_type: Optional[str] = None,
                 check_files: bool = True,
                 allow_outside_root: bool = False,
                 group_sep: str = '/',
                 metainfo: Optional[dict] = None,
                 test_mode: Optional[bool] = None,
                 **kwargs):
        if format is not None and format not in FORMATS:
            raise ValueError(f'BiasAnnotatedDataset: format must be one of '
                             f'{sorted(FORMATS)} or None (columns alone), '
                             f'got {format!r}')
        preset = FORMATS.get(format, {})
        self.format = format
        self.split = split
        self.check_files = check_files
        self.allow_outside_root = bool(allow_outside_root)
        self.columns = dict(preset.get('columns', {}))
        self.columns.update(columns or {})
        self.columns['attributes'] = list(
            self.columns.get('attributes') or [])
        for key in ('img', 'label'):
            if not self.columns.get(key):
                raise ValueError(f'BiasAnnotatedDataset: columns needs '
                                 f'{key!r} (the column of the {key}), got '
                                 f'{self.columns}')
        self.split_values = dict(split_values or preset.get(
            'split_values', DEFAULT_SPLIT_VALUES))
        ann_file = ann_file or preset.get('ann_file', '')
        if not ann_file:
            raise ValueError('BiasAnnotatedDataset: give ann_file (the '
                             'annotation file) or a format')
        self.ann_path = (ann_file if osp.isabs(ann_file) or not data_root
                         else osp.join(data_root, ann_file))
        self.split_path = None
        if format == 'celeba':
            split_file = split_file or (
                'list_eval_partition.csv' if ann_file.endswith('.csv')
                else preset['split_file'])
            self.split_path = (split_file if osp.isabs(split_file)
                               or not data_root
                               else osp.join(data_root, split_file))
        if data_prefix is None:
            data_prefix = preset.get('data_prefix', '')
        if split is not None and self.columns.get('split') is None:
            raise ValueError(
                f'BiasAnnotatedDataset: split={split!r} but columns has no '
                "'split' column; read the whole file with split=None")
        if split is not None and split not in self.split_values:
            raise ValueError(f'BiasAnnotatedDataset: split must be one of '
                             f'{sorted(self.split_values)} (the keys of '
                             f'split_values) or None, got {split!r}')

        self._rows = self._read_rows(file_type)
        self._declare(label_values if label_values is not None
                      else preset.get('label_values'),
                      dict(preset.get('attribute_values', {}),
                           **(attribute_values or {})),
                      metainfo)
        attrs = self.columns['attributes']
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
        self._aligned = self._aligned_rules(
            preset.get('aligned', {}) if aligned is None else aligned)

        meta = dict(metainfo or {})
        meta.pop('classes', None)
        extra = dict(attributes=attrs, group_by=self.group_by,
                     bias_factor_values={a: self._values[a].names
                                         for a in attrs})
        if len(attrs) > 1:
            extra['bias_factors'] = tuple(attrs)
        if self.group_by:
            full = group_metainfo(self._classes, self._group_names(group_sep),
                                  meta, **extra)
        else:
            full = dict(classes=self._classes, **extra)
            full.update(meta)
        if test_mode is None:
            test_mode = split in ('val', 'test')
        super().__init__(ann_file=self.ann_path, metainfo=full,
                         data_root=data_root, data_prefix=data_prefix,
                         test_mode=test_mode, **kwargs)

    # ------------------------------------------------------------ reading
    def _needed(self) -> List[str]:
        """The columns read from the annotation file (CelebA's split comes
        from the partition file)."""
        cols = [self.columns['img'], self.columns['label']]
        if self.columns.get('split') is not None and self.format != 'celeba':
            cols.append(self.columns['split'])
        return cols + self.columns['attributes']

    def _read_rows(self, file_type: Optional[str]) -> List[Tuple[str, dict]]:
        """``(where, {column: value})`` of every row of the file, ``where``
        naming the file and the line (JSON: the entry)."""
        path = self.ann_path
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'BiasAnnotatedDataset: annotation file {path!r} does not '
                f'exist (absolute: {osp.abspath(path)})' +
                (f'; format={self.format!r} expects it there'
                 if self.format else ''))
        if self.format == 'celeba' and not path.endswith('.csv'):
            rows = self._read_celeba_txt(path)
        else:
            kind = file_type or FILE_TYPES.get(osp.splitext(path)[1].lower())
            if kind not in ('csv', 'tsv', 'json'):
                raise ValueError(
                    f'BiasAnnotatedDataset: {path!r}: cannot tell the file '
                    f'type from its extension; name it .csv, .tsv or .json, '
                    f"or set file_type='csv' | 'tsv' | 'json'")
            rows = (self._read_json(path) if kind == 'json' else
                    self._read_table(path, ',' if kind == 'csv' else '\t'))
        if self.format == 'celeba':
            rows = self._join_celeba_split(rows)
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
                f'UpsampledDataset or a sampler):{_listed(bad)}')

    def _missing_columns(self, path: str, found: Sequence[str]) -> None:
        missing = [c for c in self._needed() if c not in found]
        if missing:
            raise ValueError(
                f'BiasAnnotatedDataset: {path!r} has no column(s) {missing} '
                f'(columns found: {list(found)}); set columns=dict(img=..., '
                'label=..., split=..., attributes=[...]) to the names in '
                'the file' +
                (f' (format={self.format!r} reads {self._needed()})'
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
            pos = {c: header.index(c) for c in self._needed()}
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
        rows = []
        for i, rec in enumerate(data):
            where = f'{path}, entry {i}'
            missing = [c for c in self._needed()
                       if c not in rec or rec[c] is None or rec[c] == '']
            if missing:
                raise ValueError(
                    f'BiasAnnotatedDataset: {where}: no column(s) {missing} '
                    f'(keys: {sorted(rec)}); set columns=dict(img=..., '
                    'label=..., split=..., attributes=[...]) to the keys '
                    'in the file')
            rows.append((where, {c: rec[c] for c in self._needed()}))
        return rows

    def _read_celeba_txt(self, path: str):
        """``list_attr_celeba.txt``: a count line, a header line of the
        attribute names, then ``<image> <+1/-1 per attribute>``."""
        img_col = self.columns['img']
        lines = read_text(path).splitlines()
        if len(lines) < 2:
            raise ValueError(
                f'BiasAnnotatedDataset: {path!r}: expected a count line, a '
                'header line of attribute names, then one line per image '
                "('<image> <+1/-1 x 40>'), as list_attr_celeba.txt")
        header = [img_col] + lines[1].split()
        self._missing_columns(path, header)
        pos = {c: header.index(c) for c in self._needed()}
        rows = []
        for n, line in enumerate(lines[2:], start=3):
            fields = line.split()
            if not fields:
                continue
            where = f'{path}, line {n}'
            if len(fields) != len(header):
                raise ValueError(
                    f'BiasAnnotatedDataset: {where}: {len(fields)} fields, '
                    f'expected {len(header)} (the image, then one value per '
                    f'attribute of line 2)')
            rows.append((where, self._cells(where, fields, pos)))
        return rows

    def _join_celeba_split(self, rows):
        """The split of each image, from the partition file."""
        split_col = self.columns.get('split')
        if split_col is None:
            return rows
        path = self.split_path
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'BiasAnnotatedDataset: CelebA partition file {path!r} does '
                "not exist; expected '<image> <0|1|2>' per line "
                '(list_eval_partition.txt, or its .csv with image_id,'
                'partition), or set split_file')
        parts = {}
        with io.StringIO(read_text(path), newline='') as f:
            if path.endswith('.csv'):
                reader = csv.reader(f)
                next(reader, None)  # image_id,partition
                lines = [(reader.line_num, ln) for ln in reader]
            else:
                lines = [(n, ln.split())
                         for n, ln in enumerate(f.read().splitlines(), 1)]
        for n, fields in lines:
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(
                    f'BiasAnnotatedDataset: {path}, line {n}: expected '
                    f"'<image> <0|1|2>', got {' '.join(fields)!r}")
            parts[fields[0].strip()] = fields[1].strip()
        img_col = self.columns['img']
        for where, cells in rows:
            if cells[img_col] not in parts:
                raise ValueError(
                    f'BiasAnnotatedDataset: {where}, column {img_col!r}: '
                    f'image {cells[img_col]!r} has no line in the partition '
                    f'file {path!r}')
            cells[split_col] = parts[cells[img_col]]
        return rows

    # ------------------------------------------------------------ values
    def _declare(self, label_spec, attr_specs: dict, metainfo) -> None:
        """The declared values of the label and every attribute; every row
        checked (split value, label, attributes) over the whole file."""
        cols = self.columns
        attrs = cols['attributes']
        unknown = [a for a in attr_specs if a not in attrs]
        if unknown:
            raise ValueError(f'BiasAnnotatedDataset: attribute_values names '
                             f'{unknown}, which are not among the '
                             f'attributes {attrs}')
        if self.format == 'celeba':
            # every CelebA attribute is -1 / +1
            binary = lambda name: {-1: f'not_{name}', 1: name}  # noqa: E731
            label_spec = label_spec or binary(cols['label'])
            attr_specs = {a: attr_specs.get(a) or binary(a) for a in attrs}
        self._refuse_missing_values(label_spec, attr_specs)
        values = {}
        values['label'] = _Declared(
            label_spec, [_norm(r[cols['label']]) for _, r in self._rows],
            f'the label column {cols["label"]!r}')
        for a in attrs:
            values[a] = _Declared(attr_specs.get(a),
                                  [_norm(r[a]) for _, r in self._rows],
                                  f'the attribute {a!r}', f'{a}=')
        self._values = values
        classes = values['label'].names
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

        split_index = {}
        for name, v in self.split_values.items():
            for raw in (v if isinstance(v, (list, tuple)) else [v]):
                split_index.setdefault(_norm(raw), []).append(name)
        bad = []
        for where, cells in self._rows:
            if cols.get('split') is not None:
                s = _norm(cells[cols['split']])
                if s not in split_index:
                    bad.append(f'{where}, column {cols["split"]!r}: split '
                               f'value {s!r} is not one of split_values '
                               f'{self.split_values}')
                cells['_splits'] = split_index.get(s, [])
            for key, col in [('label', cols['label'])] + \
                    [(a, a) for a in attrs]:
                v = _norm(cells[col])
                idx = values[key].index.get(v)
                if idx is None:
                    bad.append(f'{where}, column {col!r}: value {v!r} is not '
                               f'one of the declared values '
                               f'{values[key].raw}')
                cells[key if key == 'label' else col] = idx
        if bad:
            raise ValueError(f'BiasAnnotatedDataset: {len(bad)} bad '
                             f'value(s) in the annotations:{_listed(bad)}')

    def _refuse_missing_values(self, label_spec, attr_specs: dict) -> None:
        """A ``nan`` / ``NA`` / ``null`` label or attribute cell (pandas'
        missing value) is an error, unless that column declares it: it
        would become a class or group of its own."""
        cols = self.columns
        checked = [(cols['label'], label_spec)] + [
            (a, attr_specs.get(a)) for a in cols['attributes']]
        declared = {col: {_norm(k) for k in spec} if spec else set()
                    for col, spec in checked}
        bad = []
        for where, cells in self._rows:
            for col, _ in checked:
                v = cells[col]
                if _is_missing(v) and _norm(v) not in declared[col]:
                    bad.append(f'{where}, column {col!r}: {v!r} is a '
                               'missing value')
        if bad:
            raise ValueError(
                f'BiasAnnotatedDataset: {len(bad)} missing value(s) '
                '(NaN / NA / null) in label or attribute columns; every row '
                'needs a value: fill it or drop the row (or declare the '
                f'value in label_values / attribute_values):{_listed(bad)}')

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
        """The rows of the split, their images checked."""
        cols = self.columns
        attrs = cols['attributes']
        data_list, missing, outside = [], [], []
        # the links of the root itself are resolved: a dataset folder may
        # be a link to another disk
        root = osp.realpath(self.data_root or os.curdir)
        for where, cells in self._rows:
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
                f'read them:{_listed(outside)}')
        if missing:
            raise FileNotFoundError(
                f'BiasAnnotatedDataset: {len(missing)} image file(s) of '
                f'split {self.split!r} do not exist (images are read from '
                f'{self.img_prefix!r}: data_root + data_prefix + the '
                f'column):{_listed(missing)}')
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
