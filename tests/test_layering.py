"""The package's layers import downwards only: models, datasets and
evaluation (as in mmpretrain) never import engine, apis or cli; engine never
imports apis or cli (the tools' layer); cli never imports apis, and no module
but those of apis imports cli. Read from the source (every import statement,
those inside functions too), so a lazy import cannot hide a back-edge."""
import ast
import os
import os.path as osp

import pytest

PKG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
               'occam_plugin')

#: layer -> the layers it must not import
FORBIDDEN = {
    'models': ('engine', 'apis', 'cli'),
    'datasets': ('engine', 'apis', 'cli'),
    'evaluation': ('engine', 'apis', 'cli'),
    'engine': ('apis', 'cli'),
    'cli': ('apis', ),
}
#: the layers that may import cli, the one above engine that the tools use
CLI_IMPORTERS = ('cli', 'apis')


def imported_layers(path: str, layer: str):
    """(line, imported occam_plugin layer) of every import in ``path``, a
    file of ``occam_plugin/<layer>/``."""
    rel = osp.relpath(path, PKG).split(os.sep)[:-1]  # its package, as parts
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = rel[:len(rel) - (node.level - 1)]
                parts = base + (node.module.split('.') if node.module
                                else [])
            elif (node.module or '').startswith('occam_plugin.'):
                parts = node.module.split('.')[1:]
            else:
                continue
            # `from .. import engine` names the layer in its names
            targets = [parts] if parts else [[a.name] for a in node.names]
            for t in targets:
                yield node.lineno, t[0]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('occam_plugin.'):
                    yield node.lineno, a.name.split('.')[1]


def test_resolver_by_hand(tmp_path):
    # a fake layer file: a relative, a deep relative and an absolute import
    layer = osp.join(PKG, 'datasets', 'transforms')
    src = ('from ..bar import BAR\nfrom ...engine.hooks import X\n'
           'import occam_plugin.apis.jtt\nfrom ... import engine\n'
           'from ...cli import run_tool\n')
    path = osp.join(layer, '_layering_probe.py')
    with open(path, 'w') as f:
        f.write(src)
    try:
        found = sorted(imported_layers(path, 'datasets'))
    finally:
        os.remove(path)
    assert found == [(1, 'datasets'), (2, 'engine'), (3, 'apis'),
                     (4, 'engine'), (5, 'cli')]


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_layer_imports_downwards_only(layer):
    bad = []
    for d, _, files in os.walk(osp.join(PKG, layer)):
        for n in files:
            if n.endswith('.py'):
                path = osp.join(d, n)
                for line, target in imported_layers(path, layer):
                    if target in FORBIDDEN[layer]:
                        bad.append(f'{osp.relpath(path, PKG)}:{line} '
                                   f'imports {target}')
    assert not bad, bad


def test_only_apis_import_the_cli_layer():
    """Top-level modules (model_zoo.py, dist/, ...) and visualization too:
    the command-line layer is never below anything but apis."""
    bad = []
    for d, _, files in os.walk(PKG):
        rel = osp.relpath(d, PKG).split(os.sep)
        if rel[0] in CLI_IMPORTERS:
            continue
        for n in files:
            if n.endswith('.py'):
                path = osp.join(d, n)
                for line, target in imported_layers(path, rel[0]):
                    if target == 'cli':
                        bad.append(f'{osp.relpath(path, PKG)}:{line} '
                                   'imports cli')
    assert not bad, bad
