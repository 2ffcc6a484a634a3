"""What the annotation-file layouts (:class:`BiasAnnotatedDataset` and its
subclasses) share beyond the class: reading a text file, a cell as a value,
missing-value markers, and the declared values of a column."""
import math
from typing import List, Optional, Sequence, Union

__all__ = [
    'MAX_LISTED', 'MISSING_MARKERS', 'SPLITS_012', 'DeclaredValues',
    'is_missing',
    'listed', 'norm_value', 'read_text'
]

#: the split values of the published layouts: 0/1/2 = train/val/test
SPLITS_012 = dict(train=0, val=1, test=2)

#: how many rows an error lists before "... and N more"
MAX_LISTED = 10

Value = Union[int, str]

#: cells that mean "no value" (pandas' and spreadsheets' spellings of a
#: missing value, lower case): refused in a label / attribute / split column
#: unless declared in its values, since they would make a class or group
#: named 'nan'
MISSING_MARKERS = frozenset(
    {'nan', '-nan', 'na', 'n/a', '#n/a', '<na>', 'null', 'none'})


def is_missing(value) -> bool:
    """Whether a cell is a missing value (``None``, NaN, a marker)."""
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


def norm_value(value) -> Value:
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


def listed(items: List[str]) -> str:
    """The first :data:`MAX_LISTED` items, one a line, and how many more."""
    more = len(items) - MAX_LISTED
    return ('\n  ' + '\n  '.join(items[:MAX_LISTED]) +
            (f'\n  ... and {more} more' if more > 0 else ''))


class DeclaredValues:
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
            raw = [norm_value(k) for k in spec]
            names = [str(v) for v in spec.values()]
        elif isinstance(spec, (list, tuple)):
            raw = [norm_value(k) for k in spec]
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
        idx = self.index.get(norm_value(key))
        if idx is None and str(key) in self.names:
            idx = self.names.index(str(key))
        return idx
