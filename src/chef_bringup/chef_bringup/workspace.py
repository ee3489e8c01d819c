"""Locate the colcon workspace (the repository root) of this install."""

from __future__ import annotations

import os
from pathlib import Path


def workspace_root() -> Path:
    env = os.environ.get('CHEF_WS')
    if env:
        return Path(env)
    here = Path(__file__).resolve()           # symlink-install resolves into src/
    for parent in here.parents:
        if (parent / 'src').is_dir() and (parent / 'colcon.meta').is_file():
            return parent
    cwd = Path.cwd()
    if (cwd / 'colcon.meta').is_file():
        return cwd
    raise RuntimeError('cannot find the CHEF workspace root; set CHEF_WS')
