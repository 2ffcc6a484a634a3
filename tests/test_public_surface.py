"""Every module of ``occam_plugin`` states its public names in ``__all__``,
and every name it lists is there; the protocols a new component implements
are one short import away."""
import ast
import importlib
import os
import os.path as osp

import pytest

PKG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
               'occam_plugin')


def package_modules():
    out = []
    for d, _, files in os.walk(PKG):
        for n in sorted(files):
            if n.endswith('.py'):
                rel = osp.relpath(osp.join(d, n), osp.dirname(PKG))[:-3]
                parts = rel.split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                out.append(('.'.join(parts), osp.join(d, n)))
    return sorted(out)


def declared_all(path):
    """The literal ``__all__`` list of a module's source, or None."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '__all__'
                for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def test_every_module_declares_all():
    missing = [name for name, path in package_modules()
               if declared_all(path) is None]
    assert not missing, f'modules without __all__: {missing}'


@pytest.mark.parametrize('name,path', package_modules(),
                         ids=[m for m, _ in package_modules()])
def test_every_listed_name_exists(name, path):
    names = declared_all(path) or []
    assert len(names) == len(set(names)), f'{name}: a name twice in __all__'
    module = importlib.import_module(name)
    absent = [n for n in names if not hasattr(module, n)]
    assert not absent, f'{name}.__all__ lists {absent}, which it lacks'


def test_the_extension_points_are_one_import_away():
    from occam_plugin.models import (AnnotationNeeds, MethodPlugPoint,
                                     StageDescriber, TrainingState,
                                     register_describer)
    from occam_plugin.models.heads.method_plug_point import \
        MethodPlugPoint as deep_plug
    from occam_plugin.models.utils import \
        register_describer as utils_register
    from occam_plugin.models.utils.stages import StageDescriber as deep_sd
    from occam_plugin.models.utils.training_state import \
        TrainingState as deep_ts
    assert MethodPlugPoint is deep_plug and StageDescriber is deep_sd
    assert TrainingState is deep_ts and register_describer is utils_register
    assert isinstance(AnnotationNeeds, type)
