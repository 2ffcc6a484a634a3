"""mmpretrain's ``browse_dataset.py``, also for ``-m transformed|pipeline``
with matplotlib >= 3.10.

    python tools/analysis/browse_dataset.py CONFIG -o browse/ -n 8 \\
        -m transformed [--phase train] [--cfg-options ...]

Same arguments and output as ``mmpretrain/.mim/tools/visualization/
browse_dataset.py`` (it runs that file). mmpretrain 1.2.0's tool calls
matplotlib's private ``_tight_bbox.adjust_bbox(fig, bbox)``, whose
``renderer`` argument matplotlib 3.10 made required, so its
``transformed`` / ``pipeline`` / ``concat`` modes stop with ``TypeError:
adjust_bbox() missing 1 required positional argument: 'renderer'`` (the
``original`` mode draws no grid and works). Here ``adjust_bbox`` gets the
figure's own renderer when the tool passes none; with an older matplotlib
nothing is changed.
"""
import inspect
import os.path as osp
import runpy
import sys


def mmpretrain_tool() -> str:
    """The path of mmpretrain's ``browse_dataset.py`` (in its wheel)."""
    import mmpretrain
    return osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools',
                    'visualization', 'browse_dataset.py')


def give_adjust_bbox_a_renderer() -> bool:
    """Let ``matplotlib._tight_bbox.adjust_bbox`` be called without a
    renderer (the figure's is used). Returns whether it was needed."""
    try:
        import matplotlib._tight_bbox as tight_bbox
    except ImportError:  # matplotlib < 3.6: tight_bbox, no renderer
        return False
    adjust_bbox = tight_bbox.adjust_bbox
    renderer = inspect.signature(adjust_bbox).parameters.get('renderer')
    if renderer is None or renderer.default is not inspect.Parameter.empty:
        return False

    def adjust_bbox_any_renderer(fig, bbox_inches, renderer=None,
                                 fixed_dpi=None):
        if renderer is None:
            renderer = fig.canvas.get_renderer()
        return adjust_bbox(fig, bbox_inches, renderer, fixed_dpi)

    tight_bbox.adjust_bbox = adjust_bbox_any_renderer
    return True


def main(argv=None):
    tool = mmpretrain_tool()
    if not osp.isfile(tool):
        raise SystemExit(f'mmpretrain\'s browse_dataset.py is not at {tool} '
                         '(an mmpretrain installed without its .mim/tools?)')
    give_adjust_bbox_a_renderer()
    sys.argv = [tool, *(sys.argv[1:] if argv is None else argv)]
    runpy.run_path(tool, run_name='__main__')


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
