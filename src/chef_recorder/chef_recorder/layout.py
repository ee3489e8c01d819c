"""Where recorded data lives on disk (ROS-free).

    <data_dir>/
      catalog.sqlite                      index of every published episode (derived, rebuildable)
      episodes/<cell>/<episode_id>/       one rosbag2 bag per episode (MCAP storage)
          <episode_id>.mcap
          metadata.yaml                   rosbag2 metadata; episode metadata in custom_data (chef.*)
          SHA256SUMS                      `sha256sum -c SHA256SUMS` checks the bag's bytes
      episodes/<cell>/.partial/<id>/      episode being recorded (or left by a crash: see integrity.py)
      episodes/<cell>/.quarantine/<id>/   originals of bags that `chef data repair` replaced
      episodes/<cell>/.incoming/          episodes shipped from another node, being verified (shipping.py)
      cache/v<N>/<cell>/<episode_id>/     decoded .npy arrays for the learners (derived, deletable)

An episode directory appears under its final name only by an atomic rename of a closed, checksummed
bag, so a directory without a leading dot is always a complete bag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Tuple

EPISODES = 'episodes'
PARTIAL = '.partial'
QUARANTINE = '.quarantine'
CATALOG = 'catalog.sqlite'
CACHE = 'cache'
CHECKSUMS = 'SHA256SUMS'
RECORDING_INFO = 'recording.json'     # inside a partial bag: who records it and the start event
RECORDING_LOCK = 'recording.lock'     # flock-held by the live recorder; free after a crash

_SAFE = re.compile(r'[^A-Za-z0-9_.-]')


def safe_name(text: str, what: str = 'name') -> str:
    """A path component built from untrusted text (episode ids and cells arrive over DDS)."""
    name = _SAFE.sub('_', str(text))[:128].lstrip('.')
    if not name:
        raise ValueError(f'{what} {text!r} gives an empty path component')
    return name


@dataclass(frozen=True)
class DataLayout:
    root: Path

    def __init__(self, root):
        object.__setattr__(self, 'root', Path(root).expanduser().resolve())

    @property
    def episodes(self) -> Path:
        return self.root / EPISODES

    @property
    def catalog(self) -> Path:
        return self.root / CATALOG

    def cell_dir(self, cell: str) -> Path:
        return self.episodes / safe_name(cell, 'cell')

    def episode_dir(self, cell: str, episode_id: str) -> Path:
        return self.cell_dir(cell) / safe_name(episode_id, 'episode id')

    def partial_dir(self, cell: str, episode_id: str) -> Path:
        return self.cell_dir(cell) / PARTIAL / safe_name(episode_id, 'episode id')

    def quarantine_dir(self, cell: str) -> Path:
        return self.cell_dir(cell) / QUARANTINE

    def cache_dir(self, version: int) -> Path:
        return self.root / CACHE / f'v{version}'

    def relative(self, path: Path) -> str:
        return str(Path(path).resolve().relative_to(self.root))

    def iter_bags(self) -> Iterator[Tuple[str, Path]]:
        """(cell, bag dir) of every published episode, sorted by cell then name."""
        if not self.episodes.is_dir():
            return
        for cell in sorted(p for p in self.episodes.iterdir() if p.is_dir() and not p.name.startswith('.')):
            for bag in sorted(p for p in cell.iterdir() if p.is_dir() and not p.name.startswith('.')):
                yield cell.name, bag

    def iter_partials(self) -> Iterator[Tuple[str, Path]]:
        """(cell, dir) of every episode still under its temporary name (recording or crashed)."""
        if not self.episodes.is_dir():
            return
        for cell in sorted(p for p in self.episodes.iterdir() if p.is_dir() and not p.name.startswith('.')):
            part = cell / PARTIAL
            if part.is_dir():
                for d in sorted(p for p in part.iterdir() if p.is_dir()):
                    yield cell.name, d


def mcap_file(bag_dir: Path) -> Path:
    """The storage file of a bag written by rosbags (`<dir>/<dir name>.mcap`), or the only .mcap."""
    bag_dir = Path(bag_dir)
    cand = bag_dir / f'{bag_dir.name}.mcap'
    if cand.exists():
        return cand
    found = sorted(bag_dir.glob('*.mcap'))
    if found:
        return found[0]
    return cand
