"""Per-update metrics of a learning run: metrics.csv (one row every `log_every` updates) and
summary.json (final and averaged values), read by the CHEF loop's report.

Columns are fixed by the first row (step, wall_s, then the learner's scalar metrics in sorted order);
per-intention values appear as `<metric>/<intention>` columns. Rows are flushed as written, so a
crashed run keeps every row up to the crash; a resumed run first drops the rows after the step it
resumes from (and a row the crash cut short), then appends: no step appears twice.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union


class MetricsWriter:
    def __init__(self, run_dir: Union[str, Path], filename: str = 'metrics.csv'):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / filename
        self._file = None
        self._writer: Optional[csv.DictWriter] = None
        self._fields: Optional[List[str]] = None
        self._t0 = time.monotonic()
        self.last: Dict[str, float] = {}
        self._sums: Dict[str, float] = {}
        self._count = 0
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, newline='') as f:
                header = next(csv.reader(f), None)
            if header:
                self._fields = header

    def truncate_after(self, step: int) -> int:
        """Drop rows logged after `step` (a resumed run re-does those updates) and a row a kill cut
        short; rewrites the file atomically only when something goes. Returns the rows kept."""
        if self._file is not None:
            raise RuntimeError('truncate_after before the first write of this writer')
        if not self.path.is_file():
            return 0
        with open(self.path, newline='') as f:
            text = f.read()
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return 0
        total = len(rows)
        if total > 1 and not text.endswith('\n'):
            rows.pop()                          # the last row lost its end: a kill mid-write
        keep = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and _step(r[0]) is not None
                            and _step(r[0]) <= step]
        if len(keep) < total:
            tmp = self.path.with_suffix('.csv.tmp')
            with open(tmp, 'w', newline='') as f:
                csv.writer(f).writerows(keep)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        return len(keep) - 1

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        row = {'step': int(step), 'wall_s': round(time.monotonic() - self._t0, 3)}
        row.update({k: float(v) for k, v in metrics.items()})
        if self._writer is None:
            fresh = self._fields is None
            if fresh:
                self._fields = ['step', 'wall_s'] + sorted(k for k in row if k not in ('step', 'wall_s'))
            self._file = open(self.path, 'a', newline='')
            self._writer = csv.DictWriter(self._file, self._fields, extrasaction='ignore')
            if fresh:
                self._writer.writeheader()
        self._writer.writerow(row)
        self._file.flush()
        self.last = dict(row)
        for k, v in metrics.items():
            if math.isfinite(float(v)):
                self._sums[k] = self._sums.get(k, 0.0) + float(v)
        self._count += 1

    def summary(self, **extra) -> Dict[str, object]:
        out: Dict[str, object] = {
            'final': dict(self.last),
            'mean': {k: v / self._count for k, v in self._sums.items()} if self._count else {},
            'rows': self._count,
            'metrics_csv': str(self.path),
        }
        out.update(extra)
        return out

    def write_summary(self, summary: Mapping[str, object], filename: str = 'summary.json') -> Path:
        path = self.run_dir / filename
        tmp = path.with_suffix('.json.tmp')
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


def _step(cell: str):
    try:
        return int(float(cell))
    except ValueError:
        return None


def read_metrics(path: Union[str, Path]) -> List[Dict[str, float]]:
    """metrics.csv -> list of rows (floats; empty cells skipped)."""
    rows = []
    with open(path, newline='') as f:
        for r in csv.DictReader(f):
            rows.append({k: float(v) for k, v in r.items() if v not in ('', None)})
    return rows
