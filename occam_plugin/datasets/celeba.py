"""CelebA's attribute and partition tables, as the release has them."""
import csv
import io
import os.path as osp
from typing import List, Optional, Tuple

from .bias_annotated_dataset import BiasAnnotatedDataset, register_layout
from .bias_annotation_utils import SPLITS_012, read_text

__all__ = ['CelebA']


@register_layout('celeba')
class CelebA(BiasAnnotatedDataset):
    """``format='celeba'``: the CelebA release (as SubpopBench's download
    script reads it), or group_DRO's CSV of the same tables.

    ``list_attr_celeba.txt`` = a count line, a header line of the 40
    attribute names, then ``<image> <+1/-1 x 40>``; ``list_eval_partition
    .txt`` = ``<image> <0|1|2>``; images ``img_align_celeba/<image>``.
    group_DRO reads the same tables as CSV (``list_attr_celeba.csv`` with an
    ``image_id`` column, ``list_eval_partition.csv``: ``image_id,
    partition``): a ``.csv`` ann_file. The target and the protected
    attribute(s) are attribute names: ``columns=dict(label='Blond_Hair',
    attributes=['Male'])`` (the default); -1 is value 0, +1 value 1
    (group_DRO: ``attrs[attrs == -1] = 0``).

    Args:
        split_file (str, optional): The partition file, relative to
            ``data_root``. Defaults to ``list_eval_partition.txt``
            (``.csv`` for a ``.csv`` ann_file).
        **kwargs: The arguments of :class:`BiasAnnotatedDataset`, which
            override the defaults of this layout.
    """

    ANN_FILE = 'list_attr_celeba.txt'
    COLUMNS = dict(img='image_id', label='Blond_Hair', split='partition',
                   attributes=['Male'])
    SPLIT_VALUES = SPLITS_012
    DATA_PREFIX = 'img_align_celeba'

    def __init__(self, *args, split_file: Optional[str] = None, **kwargs):
        self.split_file = split_file
        super().__init__(*args, **kwargs)

    def value_specs(self, label_spec, attr_specs: dict) -> Tuple:
        """Every CelebA attribute is -1 / +1 (``not_<name>`` / ``<name>``)
        unless declared otherwise."""

        def binary(name):
            return {-1: f'not_{name}', 1: name}

        return (label_spec or binary(self.columns['label']), {
            a: attr_specs.get(a) or binary(a)
            for a in self.columns['attributes']
        })

    def annotation_columns(self) -> List[str]:
        """The columns of the attribute table (the split comes from the
        partition file)."""
        return [self.columns['img'], self.columns['label']
                ] + self.columns['attributes']

    @property
    def split_path(self) -> str:
        """The partition file."""
        split_file = self.split_file or (
            'list_eval_partition.csv' if self.ann_path.endswith('.csv')
            else 'list_eval_partition.txt')
        if osp.isabs(split_file) or not self.data_root:
            return split_file
        return osp.join(self.data_root, split_file)

    def read_rows(self) -> List[Tuple[str, dict]]:
        """The attribute table's rows, each with its split from the
        partition file."""
        if self.ann_path.endswith('.csv'):
            rows = super().read_rows()
        else:
            rows = self._read_attribute_txt(self.ann_path)
        return self._join_split(rows)

    def _read_attribute_txt(self, path: str):
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
        pos = {c: header.index(c) for c in self.annotation_columns()}
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

    def _join_split(self, rows):
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
