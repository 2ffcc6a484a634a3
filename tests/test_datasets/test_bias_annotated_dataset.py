"""BiasAnnotatedDataset: the published layouts (group_DRO's Waterbirds and
CelebA, SubpopBench's metadata.csv) and a column mapping, each read from a
small fixture written here; the errors it gives; Biased MNIST written out
as an annotation file gives the metrics BiasedMNIST gives; a tiny
Waterbirds-format folder trains through tools/train.py."""
import csv
import glob
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATASETS, METRICS

from tests.helpers import (WATERBIRDS_ROWS, latest_log, load_tool,
                           tiny_waterbirds_options, waterbirds_config,
                           write_image, write_waterbirds)
from occam_plugin.datasets.transforms import BIAS_KEYS


def build(**cfg):
    return DATASETS.build(dict(type='BiasAnnotatedDataset', **cfg))


def infos(ds):
    """Every sample's annotations, img_path relative to the data root."""
    out = []
    for i in range(len(ds)):
        info = dict(ds.get_data_info(i))
        info.pop('sample_idx')
        info['img_path'] = osp.relpath(info['img_path'], ds.data_root)
        out.append(info)
    return out


# ------------------------------------------------------------ Waterbirds


def test_waterbirds_format(tmp_path):
    root = write_waterbirds(tmp_path / 'wb')
    train = build(format='waterbirds', data_root=root, split='train')
    assert train.metainfo['classes'] == ('landbird', 'waterbird')
    assert train.metainfo['num_groups'] == 4
    assert train.metainfo['group_names'] == [
        'landbird/land', 'landbird/water', 'waterbird/land',
        'waterbird/water']
    got = infos(train)
    assert [(s['gt_label'], s['bias_label']) for s in got] == [
        (y, p) for y, p, s in WATERBIRDS_ROWS if s == 0]
    # group = 2 y + place (group_DRO's CUB grouping)
    assert [s['group_idx'] for s in got] == [0, 0, 1, 3, 3, 2]
    assert [s['bias_aligned'] for s in got] == [True, True, False, True,
                                                True, False]
    assert got[0]['img_path'] == '002.Landbird/bird_000.jpg'
    assert 'bias_factors' not in got[0]  # one attribute: no factor dict
    assert not train.test_mode
    val = build(format='waterbirds', data_root=root, split='val')
    test = build(format='waterbirds', data_root=root, split='test')
    assert (len(val), len(test)) == (4, 4) and val.test_mode
    assert [s['group_idx'] for s in infos(test)] == [0, 1, 2, 3]
    assert len(build(format='waterbirds', data_root=root, split=None)) == 14


# ------------------------------------------------------------ CelebA
CELEBA_ATTRS = ('5_o_Clock_Shadow', 'Blond_Hair', 'Male', 'Young')
#: (image, Blond_Hair, Male, Young, partition), values as in the release
CELEBA_ROWS = [('000001.jpg', 1, -1, 1, 0), ('000002.jpg', -1, -1, 1, 0),
               ('000003.jpg', -1, 1, -1, 0), ('000004.jpg', 1, 1, 1, 0),
               ('000005.jpg', 1, -1, -1, 1), ('000006.jpg', -1, 1, 1, 2)]


def write_celeba(root, csv_tables=False):
    """The CelebA release: list_attr_celeba.txt (a count line, a header line
    of attribute names, then '<image> <+1/-1 ...>', columns aligned with
    runs of spaces), list_eval_partition.txt ('<image> <0|1|2>'), images in
    img_align_celeba/; or group_DRO's CSV of the same two tables."""
    os.makedirs(root, exist_ok=True)
    for name, *_ in CELEBA_ROWS:
        write_image(osp.join(root, 'img_align_celeba', name))
    if csv_tables:
        with open(osp.join(root, 'list_attr_celeba.csv'), 'w') as f:
            f.write('image_id,' + ','.join(CELEBA_ATTRS) + '\n')
            for name, b, m, y, _ in CELEBA_ROWS:
                f.write(f'{name},-1,{b},{m},{y}\n')
        with open(osp.join(root, 'list_eval_partition.csv'), 'w') as f:
            f.write('image_id,partition\n')
            for name, *_, part in CELEBA_ROWS:
                f.write(f'{name},{part}\n')
        return str(root)
    with open(osp.join(root, 'list_attr_celeba.txt'), 'w') as f:
        f.write(f'{len(CELEBA_ROWS)}\n' + ' '.join(CELEBA_ATTRS) + ' \n')
        for name, b, m, y, _ in CELEBA_ROWS:
            f.write(f'{name} -1 ' + ' '.join(f'{v:2d}' for v in (b, m, y))
                    + '\n')
    with open(osp.join(root, 'list_eval_partition.txt'), 'w') as f:
        for name, *_, part in CELEBA_ROWS:
            f.write(f'{name} {part}\n')
    return str(root)


@pytest.mark.parametrize('csv_tables', [False, True])
def test_celeba_format(tmp_path, csv_tables):
    root = write_celeba(tmp_path / 'celeba', csv_tables)
    ann = 'list_attr_celeba.csv' if csv_tables else 'list_attr_celeba.txt'
    ds = build(format='celeba', data_root=root, ann_file=ann, split='train')
    # the default target / protected attribute: Blond_Hair and Male
    assert ds.metainfo['classes'] == ('not_Blond_Hair', 'Blond_Hair')
    assert ds.metainfo['group_names'] == [
        'not_Blond_Hair/not_Male', 'not_Blond_Hair/Male',
        'Blond_Hair/not_Male', 'Blond_Hair/Male']
    got = infos(ds)
    assert [s['img_path'] for s in got] == [
        f'img_align_celeba/00000{i}.jpg' for i in (1, 2, 3, 4)]
    assert [s['gt_label'] for s in got] == [1, 0, 0, 1]
    assert [s['group_idx'] for s in got] == [2, 0, 1, 3]  # 2 y + male
    assert 'bias_aligned' not in got[0]  # no alignment rule declared
    # the benchmark's shortcut (docs/datasets.md): blond <-> not male
    shortcut = build(format='celeba', data_root=root, ann_file=ann,
                     split='train', aligned=dict(Male={
                         'Blond_Hair': 'not_Male', 'not_Blond_Hair': 'Male'}))
    assert [s['bias_aligned'] for s in infos(shortcut)] == [
        True, False, True, False]
    # two protected attributes: group_DRO's y * 4 + male + 2 young
    two = build(format='celeba', data_root=root, ann_file=ann, split=None,
                columns=dict(label='Blond_Hair', attributes=['Male',
                                                             'Young']))
    assert two.metainfo['num_groups'] == 8
    assert two.metainfo['group_names'][5] == 'Blond_Hair/Male/not_Young'
    assert [s['group_idx'] for s in infos(two)] == [
        4 + 0 + 2, 0 + 0 + 2, 0 + 1 + 0, 4 + 1 + 2, 4 + 0 + 0, 0 + 1 + 2]
    assert infos(two)[2]['bias_factors'] == dict(Male=1, Young=0)
    assert 'bias_factors_aligned' not in infos(two)[2]  # no rule given
    assert [len(build(format='celeba', data_root=root, ann_file=ann,
                      split=s)) for s in ('val', 'test')] == [1, 1]


# ------------------------------------------------------------ SubpopBench
def test_subpopbench_format(tmp_path):
    root = str(tmp_path / 'spb')
    rows = [(0, 'a/0.png', 0, 0, 1), (1, 'a/1.png', 0, 2, 0),
            (2, 'a/2.png', 1, 1, 1), (3, 'a/3.png', 2, 0, 0)]
    with open(osp.join(tmp_path, 'metadata.csv'), 'w') as f:
        f.write('id,filename,split,y,a\n')
        f.writelines(f'{i},{fn},{s},{y},{a}\n' for i, fn, s, y, a in rows)
    for _, fn, *_ in rows:
        write_image(osp.join(root, fn))
    ds = build(format='subpopbench', data_root=root, split='train',
               ann_file=str(tmp_path / 'metadata.csv'))
    # values found over the whole file: 3 classes, 2 values of a
    assert ds.metainfo['classes'] == ('0', '1', '2')
    assert ds.metainfo['group_names'] == [
        '0/a=0', '0/a=1', '1/a=0', '1/a=1', '2/a=0', '2/a=1']
    assert [(s['img_path'], s['gt_label'], s['group_idx'])
            for s in infos(ds)] == [('a/0.png', 0, 1), ('a/1.png', 2, 4)]
    test = build(format='subpopbench', data_root=root, split='test',
                 ann_file=str(tmp_path / 'metadata.csv'))
    assert test.metainfo['num_groups'] == 6 and len(test) == 1


def test_lazy_init_reads_nothing_until_full_init(tmp_path):
    """Every value declared (Waterbirds): the full metainfo before the
    file exists; undeclared (SubpopBench): full_init completes it. Either
    way the same dataset as without lazy_init."""
    root = str(tmp_path / 'wb')
    lazy = build(format='waterbirds', data_root=root, split='train',
                 lazy_init=True)
    assert lazy.metainfo['group_names'] == [
        'landbird/land', 'landbird/water', 'waterbird/land',
        'waterbird/water']
    write_waterbirds(root)
    eager = build(format='waterbirds', data_root=root, split='train')
    lazy.full_init()
    assert infos(lazy) == infos(eager) and lazy.metainfo == eager.metainfo

    ann = str(tmp_path / 'metadata.csv')
    with open(ann, 'w') as f:
        f.write('id,filename,split,y,a\n0,bird_000.jpg,0,1,0\n'
                '1,bird_001.jpg,0,0,1\n')
    for name in ('bird_000.jpg', 'bird_001.jpg'):
        write_image(osp.join(root, name))
    lazy = build(format='subpopbench', data_root=root, ann_file=ann,
                 lazy_init=True)
    assert 'group_names' not in lazy.metainfo  # the values are in the file
    eager = build(format='subpopbench', data_root=root, ann_file=ann)
    assert len(lazy) == 2  # full_init on first use
    assert infos(lazy) == infos(eager) and lazy.metainfo == eager.metainfo
    assert lazy.metainfo['group_names'] == ['0/a=0', '0/a=1', '1/a=0',
                                            '1/a=1']


def test_format_builds_the_layout_class(tmp_path):
    import copy
    import pickle

    from occam_plugin.datasets import (BiasAnnotatedDataset, CelebA,
                                       SubpopBench, Waterbirds)
    root = write_waterbirds(tmp_path / 'wb')
    ds = build(format='waterbirds', data_root=root, split='val')
    assert type(ds) is Waterbirds and isinstance(ds, BiasAnnotatedDataset)
    # copies (mmengine's get_subset, DataLoader workers) keep the class
    for other in (copy.deepcopy(ds), pickle.loads(pickle.dumps(ds))):
        assert type(other) is Waterbirds and infos(other) == infos(ds)
    assert infos(Waterbirds(data_root=root, split='val')) == infos(ds)
    with pytest.raises(ValueError, match="Waterbirds reads "
                       "format='waterbirds', got format='celeba'"):
        Waterbirds(data_root=root, format='celeba')
    with pytest.raises(TypeError, match='split_file'):  # CelebA's alone
        build(format='waterbirds', data_root=root, split_file='x.txt')
    assert {CelebA.FORMAT, SubpopBench.FORMAT} == {'celeba', 'subpopbench'}


# ------------------------------------------------------------ columns
def write_generic(root, kind):
    """A file of another layout: path,target,fold,bg,tex with string
    labels and split names, as CSV, TSV or JSON."""
    rows = [dict(path='i/0.png', target='cat', fold='tr', bg='grass',
                 tex='fur'),
            dict(path='i/1.png', target='dog', fold='tr', bg='sofa',
                 tex='fur'),
            dict(path='i/2.png', target='dog', fold='te', bg='grass',
                 tex='smooth')]
    for r in rows:
        write_image(osp.join(root, r['path']))
    path = osp.join(root, f'ann.{kind}')
    with open(path, 'w', newline='') as f:
        if kind == 'json':
            json.dump(rows, f)
        else:
            w = csv.DictWriter(f, fieldnames=list(rows[0]),
                               delimiter=',' if kind == 'csv' else '\t')
            w.writeheader()
            w.writerows(rows)
    return path


GENERIC = dict(
    columns=dict(img='path', label='target', split='fold',
                 attributes=['bg', 'tex']),
    split_values=dict(train='tr', test=['te']),
    label_values=['dog', 'cat'],
    attribute_values=dict(bg={'sofa': 'indoor', 'grass': 'outdoor'}),
    group_by=['bg'],
    aligned=dict(bg=dict(cat='outdoor', dog='sofa'), tex='same_index'))


@pytest.mark.parametrize('kind', ['csv', 'tsv', 'json'])
def test_column_mapping(tmp_path, kind):
    root = str(tmp_path)
    ann = write_generic(root, kind)
    ds = build(ann_file=ann, data_root=root, split='train', **GENERIC)
    assert ds.metainfo['classes'] == ('dog', 'cat')  # declared order
    assert ds.metainfo['group_names'] == [
        'dog/indoor', 'dog/outdoor', 'cat/indoor', 'cat/outdoor']
    assert ds.metainfo['bias_factors'] == ('bg', 'tex')
    assert ds.metainfo['bias_factor_values'] == dict(
        bg=['indoor', 'outdoor'], tex=['fur', 'smooth'])
    # cat on grass (outdoor, aligned); dog on the sofa (aligned)
    assert infos(ds) == [
        dict(img_path='i/0.png', gt_label=1, group_idx=3, bias_label=1,
             bias_aligned=True, bias_factors=dict(bg=1, tex=0),
             bias_factors_aligned=dict(bg=True, tex=False)),
        dict(img_path='i/1.png', gt_label=0, group_idx=0, bias_label=0,
             bias_aligned=True, bias_factors=dict(bg=0, tex=0),
             bias_factors_aligned=dict(bg=True, tex=True))]
    test = build(ann_file=ann, data_root=root, split='test', **GENERIC)
    assert [s['bias_aligned'] for s in infos(test)] == [False]
    # metainfo classes rename the classes, and the group names follow
    renamed = build(ann_file=ann, data_root=root, split='test',
                    metainfo=dict(classes=['Dog', 'Cat']), **GENERIC)
    assert renamed.metainfo['group_names'][1] == 'Dog/outdoor'


def test_no_attributes_no_bias_keys(tmp_path):
    ann = write_generic(str(tmp_path), 'csv')
    ds = build(ann_file=ann, data_root=str(tmp_path), split=None,
               columns=dict(img='path', label='target', split='fold'),
               split_values=dict(train='tr', test='te'))
    assert infos(ds)[0] == dict(img_path='i/0.png', gt_label=0)
    assert 'num_groups' not in ds.metainfo


# ------------------------------------------------------------ errors
def error_of(tmp_path, edit, exc=ValueError, **cfg):
    """The message of building a Waterbirds fixture edited by ``edit``."""
    root = write_waterbirds(tmp_path / 'wb')
    path = osp.join(root, 'metadata.csv')
    with open(path) as f:
        lines = f.read().splitlines()
    lines = edit(lines)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with pytest.raises(exc) as info:
        build(format='waterbirds', data_root=root, **cfg)
    return str(info.value), path


def test_error_missing_column(tmp_path):
    msg, path = error_of(tmp_path, lambda ls: [ls[0].replace(
        ',place,', ',background,')] + ls[1:])
    assert path in msg and "['place']" in msg and 'background' in msg


def set_cell(lines, line_no, column, value):
    """``lines`` with field ``column`` (0-based) of ``line_no`` (1-based,
    the header is line 1) replaced."""
    fields = lines[line_no - 1].split(',')
    fields[column] = value
    lines[line_no - 1] = ','.join(fields)
    return lines


def test_error_unknown_split(tmp_path):
    def edit(ls):
        return set_cell(ls, 4, 3, '7')  # line 4: split 7
    msg, path = error_of(tmp_path, edit)
    assert f'{path}, line 4' in msg and "column 'split'" in msg
    assert 'split value 7' in msg


def test_error_label_and_attribute_outside_declared(tmp_path):
    def edit(ls):
        set_cell(ls, 3, 2, '2')  # line 3: y 2
        return set_cell(ls, 6, 4, '5')  # line 6: place 5
    msg, path = error_of(tmp_path, edit)
    assert '2 bad value(s)' in msg
    assert f"{path}, line 3, column 'y': value 2 is not one of the " \
        'declared values [0, 1]' in msg
    assert f"{path}, line 6, column 'place': value 5" in msg


def test_error_empty_cell(tmp_path):
    def edit(ls):
        return set_cell(ls, 2, 2, ' ')  # line 2: no y
    msg, path = error_of(tmp_path, edit)
    assert f"{path}, line 2, column 'y': no value" in msg


def test_error_missing_image(tmp_path):
    root = write_waterbirds(tmp_path / 'wb')
    os.remove(osp.join(root, '002.Landbird', 'bird_001.jpg'))
    with pytest.raises(FileNotFoundError) as info:
        build(format='waterbirds', data_root=root, split='train')
    msg = str(info.value)
    assert '1 image file(s)' in msg
    assert f"{osp.join(root, 'metadata.csv')}, line 3, column " \
        "'img_filename'" in msg and 'bird_001.jpg' in msg
    # another split does not read that image
    assert len(build(format='waterbirds', data_root=root, split='val')) == 4
    # nor a build that does not check the files
    assert len(build(format='waterbirds', data_root=root, split='train',
                     check_files=False)) == 6


def test_error_json_entry_and_bad_options(tmp_path):
    root = str(tmp_path)
    ann = write_generic(root, 'json')
    with open(ann) as f:
        rows = json.load(f)
    del rows[1]['bg']
    with open(ann, 'w') as f:
        json.dump(rows, f)
    with pytest.raises(ValueError, match=re.escape(
            f"{ann}, entry 1: no column(s) ['bg']")):
        build(ann_file=ann, data_root=root, **GENERIC)
    with pytest.raises(ValueError, match='format must be one of'):
        build(format='imagenet', data_root=root)
    with pytest.raises(ValueError, match=r"split must be one of \['test', "
                                         r"'train'\]"):
        build(ann_file=ann, data_root=root, split='val', **GENERIC)
    with pytest.raises(FileNotFoundError, match='annotation file'):
        build(format='waterbirds', data_root=str(tmp_path / 'none'))


def test_error_image_path_outside_data_root(tmp_path):
    """A row may not make training read a file outside data_root: not by
    ``../``, an absolute path, or a link out of the folder."""
    outside = tmp_path / 'outside'
    write_image(str(outside / 'x.jpg'))
    root = write_waterbirds(tmp_path / 'wb')
    link = osp.join(root, '002.Landbird', 'bird_002.jpg')
    os.remove(link)
    os.symlink(str(outside / 'x.jpg'), link)  # line 4's image

    def edit(ls):
        set_cell(ls, 2, 1, '../outside/x.jpg')
        return set_cell(ls, 3, 1, str(outside / 'x.jpg'))
    msg, path = error_of(tmp_path, edit, split='train')
    assert '3 image path(s) of split \'train\' resolve outside ' \
        f'data_root {osp.realpath(root)!r}' in msg
    real = osp.realpath(str(outside / 'x.jpg'))
    for line, cell in [(2, '../outside/x.jpg'), (3, str(outside / 'x.jpg')),
                       (4, '002.Landbird/bird_002.jpg')]:
        assert f"{path}, line {line}, column 'img_filename': {cell!r} is " \
            f'{real!r}' in msg
    assert 'allow_outside_root=True' in msg
    # said on purpose, it reads them
    ds = build(format='waterbirds', data_root=root, split='train',
               allow_outside_root=True)
    assert osp.realpath(ds.get_data_info(0)['img_path']) == real
    # a data_root that is itself a link (another disk) is fine
    os.symlink(root, str(tmp_path / 'wb_link'))
    os.remove(link)
    write_image(link)
    with open(path) as f:
        lines = f.read().splitlines()
    set_cell(lines, 2, 1, '002.Landbird/bird_000.jpg')
    set_cell(lines, 3, 1, '002.Landbird/bird_001.jpg')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    assert len(build(format='waterbirds', data_root=str(tmp_path / 'wb_link'),
                     split='train')) == 6


def test_error_repeated_image_row(tmp_path):
    msg, path = error_of(tmp_path, lambda ls: ls + [ls[2]])  # line 3 again
    assert '1 repeated image(s)' in msg
    assert f"{path}, line 16, column 'img_filename': image " \
        "'002.Landbird/bird_001.jpg' is already listed at line 3" in msg


#: a file read through columns alone: labels and values undeclared
UNDECLARED = dict(columns=dict(img='path', label='target', split='fold',
                               attributes=['bg', 'tex']),
                  split_values=dict(train='tr', test=['te']))


def test_error_nan_label_and_attribute(tmp_path):
    """pandas writes a missing value as an empty cell or ``nan``: a label
    ``nan`` made a class 'nan', an attribute ``NaN`` a group value."""
    root = str(tmp_path)
    ann = write_generic(root, 'csv')
    with open(ann) as f:
        lines = f.read().splitlines()
    lines[1] = lines[1].replace(',cat,', ',nan,')  # line 2: label
    lines[2] = lines[2].replace(',fur', ',NaN')  # line 3: tex
    with open(ann, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with pytest.raises(ValueError) as info:
        build(ann_file=ann, data_root=root, **UNDECLARED)
    msg = str(info.value)
    assert '2 missing value(s)' in msg
    assert f"{ann}, line 2, column 'target': 'nan' is a missing value" in msg
    assert f"{ann}, line 3, column 'tex': 'NaN' is a missing value" in msg
    # declared, 'nan' is a value like any other
    ds = build(ann_file=ann, data_root=root, label_values=['nan', 'dog'],
               attribute_values=dict(tex=['fur', 'smooth', 'NaN']),
               **UNDECLARED)
    assert ds.metainfo['classes'] == ('nan', 'dog')


def test_error_csv_not_utf8(tmp_path):
    root = str(tmp_path)
    ann = write_generic(root, 'csv')
    with open(ann, encoding='utf-8') as f:
        text = f.read().replace('grass', 'gr\u00e4ss')  # line 2
    with open(ann, 'wb') as f:
        f.write(text.encode('latin-1'))
    at = text.encode('latin-1').index(b'\xe4')
    with pytest.raises(ValueError, match=re.escape(
            f"{ann!r} is not UTF-8: byte {at} (line 2) is b'\\xe4'")) as e:
        build(ann_file=ann, data_root=root, **UNDECLARED)
    assert 're-save the file as UTF-8' in str(e.value)


# ------------------------------------------------------------ round trip
def test_biased_mnist_round_trip_gives_the_same_metrics(tmp_path):
    """Our Biased MNIST test split written out as a CSV (digit, split, the
    seven factors) and read by BiasAnnotatedDataset gives the samples'
    bias fields and, for the same predictions, the metrics of BiasedMNIST."""
    from occam_plugin.datasets import biased_mnist_generator as gen
    from occam_plugin.datasets.biased_mnist_generator import FACTORS
    generate = dict(num_trainval=12, num_test=40, image_size=32, seed=3)
    root = str(tmp_path / 'bm')
    bm = DATASETS.build(dict(type='BiasedMNIST', data_root=root,
                             split='test', generate=generate))
    values = bm.metainfo['bias_factor_values']
    ann = osp.join(root, 'test.csv')
    with open(ann, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['img', 'digit', 'split', *FACTORS])
        for i in range(len(bm)):
            info = bm.get_data_info(i)
            w.writerow([osp.relpath(info['img_path'], root),
                        info['gt_label'], 'test',
                        *(info['bias_factors'][f] for f in FACTORS)])
    # aligned: the value is the class, or (position) the canonical cell
    k = gen.generation_params(**generate)['num_cells']
    canon = gen.canonical_positions(k, generate['seed'])
    aligned = {f: 'same_index' for f in FACTORS}
    aligned['digit_position'] = {str(c): canon[c][0][0] * k + canon[c][0][1]
                                 for c in range(10)}
    ours = build(ann_file=ann, data_root=root, split='test',
                 columns=dict(img='img', label='digit', split='split',
                              attributes=list(FACTORS)),
                 label_values=list(range(10)),
                 attribute_values={f: list(range(len(values[f])))
                                   for f in FACTORS},
                 group_by=['digit_color'], aligned=aligned)
    assert ours.metainfo['num_groups'] == bm.metainfo['num_groups'] == 100
    assert ours.metainfo['bias_factors'] == tuple(FACTORS)
    assert len(ours) == len(bm) == 40
    for i in range(len(bm)):
        a, b = bm.get_data_info(i), ours.get_data_info(i)
        assert a == b, i
    # identical predictions (a fixed random guess, some right) -> identical
    # metrics, dict for dict
    rng = np.random.default_rng(0)
    guesses = rng.integers(0, 10, len(bm))
    results = []
    for ds in (bm, ours):
        metric = METRICS.build(dict(type='BiasMetric'))
        metric.dataset_meta = ds.metainfo
        samples = []
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            pred = info['gt_label'] if i % 3 == 0 else int(guesses[i])
            samples.append(dict(
                gt_label=torch.tensor([info['gt_label']]),
                pred_label=torch.tensor([pred]),
                **{k: info[k] for k in BIAS_KEYS}))
        metric.process(None, samples)
        results.append(metric.evaluate(len(ds)))
    assert results[0] == results[1]
    assert 'bias/worst_group_acc' in results[0]
    assert 'bias/digit_position_conflicting_acc' in results[0]


# ------------------------------------------------------------ end to end


@pytest.mark.slow
def test_occamnet_trains_on_a_waterbirds_folder(tmp_path):
    root = write_waterbirds(tmp_path / 'waterbird_complete95_forest2water2')
    work = tmp_path / 'run'
    load_tool('train.py').main(
        [waterbirds_config(tmp_path), '--work-dir', str(work),
         '--cfg-options', *tiny_waterbirds_options(root)])
    log = latest_log(work)
    assert re.search(r'bias/worst_group_acc: \d', log), log[-3000:]
    assert 'bias/unbiased_acc' in log and 'bias/conflicting_acc' in log
    with open(glob.glob(osp.join(str(work), '*', 'bias_metrics.json'))[0]) \
            as f:
        saved = json.load(f)
    assert sorted(saved['groups']) == ['0', '1', '2', '3']  # all 4 in val
    assert osp.exists(osp.join(str(work), 'epoch_1.pth'))
