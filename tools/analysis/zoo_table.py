"""Print the README's model-zoo table from the shipped model index.

    python tools/analysis/zoo_table.py            # markdown, one row a model

Every model of ``model-index.yml`` (through its metafiles) gets a row: its
name, training data, test dataset and metrics, config and weights, so the
README never lists fewer models than the zoo has
(tests/test_apis/test_model_zoo.py compares the README's table with this
output).
"""
import argparse
import os.path as osp
import sys

#: metrics shown, in this order, where a model reports them
METRICS = ('Unbiased Top 1 Accuracy', 'Top 1 Accuracy', 'Expected Compute')


def zoo_table(index: str) -> str:
    """The markdown table of every model in ``index`` (a
    ``model-index.yml``)."""
    from modelindex import load
    rows = ['| model | trained on | tested on | ' + ' | '.join(METRICS) +
            ' | config | weights |',
            '|' + '---|' * (5 + len(METRICS))]
    for m in load(index).models:
        for r in m.results:
            values = [str(r.metrics.get(k, '-')) for k in METRICS]
            rows.append(
                f'| {m.name} | {m.metadata.training_data} | {r.dataset} | ' +
                ' | '.join(values) + f' | `{m.config}` | `{m.weights}` |')
    return '\n'.join(rows) + '\n'


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--index', help='model-index.yml (default: the '
                        'shipped one)')
    args = parser.parse_args(argv)
    index = args.index
    if index is None:
        from occam_plugin.model_zoo import model_index_path
        index = model_index_path()
        if index is None:
            raise SystemExit('error: this install ships no model-index.yml')
    if not osp.isfile(index):
        raise SystemExit(f'error: --index {index!r} does not exist')
    table = zoo_table(index)
    sys.stdout.write(table)
    return table


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
