"""Where the bias/exit metrics write their JSON, and how.

An mmengine ``BaseMetric`` does not know the runner, so the metrics find the
run's log folder (``<work_dir>/<timestamp>/``, i.e. ``runner.log_dir``)
through the current ``MMLogger``: the Runner opens its log file
``<work_dir>/<timestamp>/<timestamp>.log`` there. An explicit ``out_dir``
wins; with neither (a metric used outside a Runner) nothing is written.
"""
import json
import os
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.logging import MMLogger


def resolve_out_dir(out_dir: Optional[str] = None) -> Optional[str]:
    """The folder to write metric JSON files into, or None if unknown."""
    if out_dir is not None:
        return out_dir
    try:
        logger = MMLogger.get_current_instance()
    except Exception:  # no logger yet: not inside a Runner
        return None
    log_file = getattr(logger, 'log_file', None)
    if not log_file:
        return None
    return osp.dirname(osp.abspath(log_file))


def dump_metrics_json(file_name: str, payload: dict,
                      out_dir: Optional[str] = None) -> Optional[str]:
    """Write ``payload`` as JSON; return the path or None.

    The file holds the latest evaluation (overwritten at each evaluation),
    so a script reads the final numbers from one known place.
    """
    folder = resolve_out_dir(out_dir)
    if folder is None or not is_main_process():
        return None
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, file_name)
    data = dict(payload)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)  # atomic: readers never see half a file
    return path
