"""The dataset catalog: one SQLite row per published episode (ROS-free).

Derived data: every column comes from a bag's metadata.yaml (custom_data `chef.*`) and its files, so
`rebuild()` recreates an identical catalog from the bags alone. Several recorders (one per cell) and
readers share the file: WAL journal, a busy timeout, one short transaction per episode.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from chef_recorder.bagio import BagError, read_bag_metadata
from chef_recorder.layout import DataLayout
from chef_recorder.metadata import PREFIX, from_custom_data

# column -> SQL type; the rest of the metadata is in the JSON column `metadata`.
COLUMNS: Tuple[Tuple[str, str], ...] = (
    ('path', 'TEXT PRIMARY KEY'), ('id', 'TEXT'), ('episode_id', 'TEXT'), ('cell', 'TEXT'),
    ('source', 'TEXT'), ('triplet', 'TEXT'), ('seed', 'INTEGER'), ('policy_id', 'TEXT'),
    ('checkpoint_sha256', 'TEXT'), ('stage', 'TEXT'), ('iteration', 'INTEGER'), ('success', 'INTEGER'),
    ('complete', 'INTEGER'), ('status', 'TEXT'), ('steps', 'INTEGER'), ('rate_ok', 'INTEGER'),
    ('dropped_messages', 'INTEGER'), ('start_stamp_ns', 'INTEGER'), ('recorded_unix_ns', 'INTEGER'),
    ('file_bytes', 'INTEGER'), ('metadata', 'TEXT'),
)
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)
_FROM_META = ('episode_id', 'cell', 'source', 'triplet', 'seed', 'policy_id', 'checkpoint_sha256',
              'stage', 'iteration', 'success', 'complete', 'status', 'steps', 'rate_ok',
              'dropped_messages', 'start_stamp_ns', 'recorded_unix_ns')


class CatalogError(RuntimeError):
    pass


class EpisodeNotFound(CatalogError, KeyError):
    """No (or no unique) episode for an id; a KeyError for lookups, a RuntimeError for the CLI."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


def row_from_bag(layout: DataLayout, bag_dir: Path) -> Dict[str, Any]:
    """The catalog row of a published bag, from its files only."""
    info = read_bag_metadata(bag_dir)
    custom = info.get('custom_data')
    if not isinstance(custom, dict) or not any(str(k).startswith(PREFIX) for k in custom):
        raise BagError(f'{bag_dir}: not a CHEF episode (a rosbag2 bag without chef.* custom_data)')
    meta = from_custom_data(custom)
    row: Dict[str, Any] = {k: meta.get(k) for k in _FROM_META}
    for k in ('success', 'complete', 'rate_ok'):
        row[k] = None if row[k] is None else int(bool(row[k]))
    for k in ('seed', 'iteration'):
        if row[k] is not None:
            try:
                row[k] = int(row[k])
            except (TypeError, ValueError):
                pass
    row['path'] = layout.relative(bag_dir)
    row['id'] = Path(bag_dir).name
    row['cell'] = row['cell'] or Path(bag_dir).parent.name
    row['episode_id'] = row['episode_id'] or Path(bag_dir).name
    row['file_bytes'] = _dir_bytes(bag_dir)
    row['metadata'] = json.dumps(meta, sort_keys=True)
    return row


class Catalog:
    """SQLite index of the episodes under a data directory."""

    def __init__(self, layout: DataLayout | str | os.PathLike, path: Optional[Path] = None):
        self.layout = layout if isinstance(layout, DataLayout) else DataLayout(layout)
        self.path = Path(path) if path is not None else self.layout.catalog
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute('PRAGMA journal_mode=WAL')
        self._db.execute('PRAGMA busy_timeout=30000')
        cols = ', '.join(f'{c} {t}' for c, t in COLUMNS)
        with self._db:
            self._db.execute(f'CREATE TABLE IF NOT EXISTS episodes ({cols})')
            self._db.execute('CREATE INDEX IF NOT EXISTS episodes_id ON episodes(id)')

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ writing
    def add_bag(self, bag_dir: Path) -> Dict[str, Any]:
        row = row_from_bag(self.layout, bag_dir)
        self._upsert([row])
        return row

    def _upsert(self, rows: Iterable[Mapping[str, Any]]) -> None:
        q = (f'INSERT OR REPLACE INTO episodes ({", ".join(COLUMN_NAMES)}) '
             f'VALUES ({", ".join("?" for _ in COLUMN_NAMES)})')
        with self._db:
            self._db.executemany(q, [tuple(r[c] for c in COLUMN_NAMES) for r in rows])

    def remove(self, rel_paths: Iterable[str]) -> None:
        with self._db:
            self._db.executemany('DELETE FROM episodes WHERE path = ?', [(p,) for p in rel_paths])

    def sync(self, progress: bool = False) -> Tuple[int, int]:
        """Add bags missing from the catalog, drop rows whose bag is gone: (added, removed).
        Bags whose metadata cannot be read are left out (see `chef data verify`)."""
        on_disk = {self.layout.relative(p): p for _, p in self.layout.iter_bags()}
        known = {r['path']: r['file_bytes'] for r in self._db.execute('SELECT path, file_bytes FROM episodes')}
        new = [on_disk[p] for p in sorted(set(on_disk) - set(known))]
        for p in sorted(set(on_disk) & set(known)):        # replaced in place (repair): sizes differ
            if _dir_bytes(on_disk[p]) != known[p]:
                new.append(on_disk[p])
        rows = []
        for bag in _progress(new, 'cataloguing', progress):
            try:
                rows.append(row_from_bag(self.layout, bag))
            except (BagError, OSError, ValueError, TypeError, AttributeError):
                continue                    # unreadable or foreign: `chef data verify` names it
        self._upsert(rows)
        gone = sorted(set(known) - set(on_disk))
        self.remove(gone)
        return len(rows), len(gone)

    def rebuild(self, progress: bool = False) -> int:
        """Replace the whole catalog by rows read from the bags; returns the episode count."""
        rows = []
        bags = [p for _, p in self.layout.iter_bags()]
        for bag in _progress(bags, 'rebuilding catalog', progress):
            try:
                rows.append(row_from_bag(self.layout, bag))
            except (BagError, OSError, ValueError, TypeError, AttributeError):
                continue                    # unreadable or foreign: `chef data verify` names it
        with self._db:
            self._db.execute('DELETE FROM episodes')
        self._upsert(rows)
        return len(rows)

    # ------------------------------------------------------------------ reading
    def rows(self, order: str = 'cell, start_stamp_ns, path', **filters) -> List[Dict[str, Any]]:
        """Rows matching `filters` (column or metadata field = value, or IN a list; None = IS NULL)."""
        where, args = [], []
        for key, value in filters.items():
            if key in COLUMN_NAMES:
                expr = key
            else:
                if not key.replace('_', '').isalnum():
                    raise CatalogError(f'bad filter name {key!r}')
                expr = f"json_extract(metadata, '$.{key}')"
            if value is None:
                where.append(f'{expr} IS NULL')
            elif isinstance(value, (list, tuple, set, frozenset)):
                vals = [_sql(v) for v in value]
                where.append(f'{expr} IN ({", ".join("?" for _ in vals)})')
                args += vals
            else:
                where.append(f'{expr} = ?')
                args.append(_sql(value))
        q = 'SELECT * FROM episodes'
        if where:
            q += ' WHERE ' + ' AND '.join(where)
        q += f' ORDER BY {order}'
        return [dict(r) for r in self._db.execute(q, args)]

    def get(self, id_or_path: str) -> Dict[str, Any]:
        rows = [dict(r) for r in self._db.execute(
            'SELECT * FROM episodes WHERE id = ? OR path = ? OR episode_id = ?',
            (id_or_path, id_or_path, id_or_path))]
        if not rows:
            raise EpisodeNotFound(f'no episode {id_or_path!r} in {self.path}')
        if len(rows) > 1:
            raise EpisodeNotFound(f'{id_or_path!r} is ambiguous: {[r["path"] for r in rows]}')
        return rows[0]

    def dump(self) -> List[Dict[str, Any]]:
        """Every row, sorted by path (used to compare a rebuilt catalog with the original)."""
        return self.rows(order='path')

    def __len__(self) -> int:
        return self._db.execute('SELECT COUNT(*) FROM episodes').fetchone()[0]


def _sql(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    return v


def _progress(items: List[Any], desc: str, enabled: bool):
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit='bag')
