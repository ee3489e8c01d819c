"""Ship a published episode from one store into another, whole or not at all (ROS-free).

A cell that runs on another machine (a Ray actor of `chef loop` with `ray_address` set) records into
a store local to its node; each published episode then travels to the one store the learners read
as a `ShippedEpisode`: every file of the bag directory as bytes with its sha256. `ingest_episode`
on the receiving side

  1. checks the payload: names are plain file names, every file's bytes hash to the sha256 sent
     with it, the bag's own SHA256SUMS is among them;
  2. writes the files into `episodes/<cell>/.incoming/<random>/<episode id>/` (a dot directory:
     invisible to the catalog, `iter_bags` and the recorder's partial-episode repair), fsyncs them
     and verifies the bag there as `chef data verify` does (SHA256SUMS, index, message counts);
  3. renames the directory to `episodes/<cell>/<episode id>/` (one atomic rename on one filesystem)
     and only then adds the catalog row (the catalog is derived: a crash between the two is healed
     by the next `Catalog.sync`).

So an interrupted or corrupted shipment leaves no episode in the store: the final name appears only
for a complete, verified bag, as for a bag the recorder publishes itself. Shipping the same episode
again is a no-op when the stored bag has the same SHA256SUMS, an error when it differs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

from chef_recorder.layout import CHECKSUMS, DataLayout, safe_name

INCOMING = '.incoming'


class ShipmentError(RuntimeError):
    """A shipped episode that is not a complete, intact bag (nothing was stored)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ShippedEpisode:
    """A published episode in transit: its cell, its id (= directory name) and every file."""

    cell: str
    episode_id: str
    files: Dict[str, bytes] = field(repr=False)
    sha256: Dict[str, str] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.files.values())


def pack_episode(bag_dir: Path) -> ShippedEpisode:
    """Every file of a published bag directory, with its sha256."""
    bag_dir = Path(bag_dir)
    files = {p.name: p.read_bytes() for p in sorted(bag_dir.iterdir()) if p.is_file()}
    if CHECKSUMS not in files:
        raise ShipmentError(f'{bag_dir}: no {CHECKSUMS} (not a published episode)')
    return ShippedEpisode(cell=bag_dir.parent.name, episode_id=bag_dir.name, files=files,
                          sha256={n: sha256_bytes(b) for n, b in files.items()})


def _check_payload(ep: ShippedEpisode) -> None:
    if safe_name(ep.cell, 'cell') != ep.cell or safe_name(ep.episode_id, 'episode id') != ep.episode_id:
        raise ShipmentError(f'shipped episode {ep.cell}/{ep.episode_id}: not a plain cell/episode name')
    if CHECKSUMS not in ep.files:
        raise ShipmentError(f'shipped episode {ep.episode_id}: no {CHECKSUMS} among its files')
    if set(ep.files) != set(ep.sha256):
        raise ShipmentError(f'shipped episode {ep.episode_id}: files {sorted(ep.files)} but hashes for '
                            f'{sorted(ep.sha256)}')
    for name, data in ep.files.items():
        if name != os.path.basename(name) or name.startswith('.') or not name:
            raise ShipmentError(f'shipped episode {ep.episode_id}: bad file name {name!r}')
        if sha256_bytes(data) != ep.sha256[name]:
            raise ShipmentError(f'shipped episode {ep.episode_id}: {name} arrived with {len(data)} bytes '
                                'that do not match its sha256 (damaged or cut short in transit)')


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ingest_episode(layout: DataLayout, ep: ShippedEpisode, catalog=None) -> Optional[Path]:
    """Store a shipped episode under `layout` atomically (module docstring); add it to `catalog`
    (a chef_recorder.catalog.Catalog) when given. Returns the bag directory, or None when the same
    bag was already stored. Raises ShipmentError, leaving nothing behind, for a bad payload."""
    from chef_recorder.integrity import verify_bag
    _check_payload(ep)
    final = layout.episode_dir(ep.cell, ep.episode_id)
    if final.exists():
        old = final / CHECKSUMS
        if old.is_file() and old.read_bytes() == ep.files[CHECKSUMS]:
            return None
        raise ShipmentError(f'{final} already holds a different episode with id {ep.episode_id}')
    stage = final.parent / INCOMING / uuid.uuid4().hex
    tmp = stage / ep.episode_id
    tmp.mkdir(parents=True)
    try:
        for name, data in ep.files.items():
            _write_synced(tmp / name, data)
        problems = verify_bag(tmp, episode=True)
        if problems:
            raise ShipmentError(f'shipped episode {ep.episode_id} fails verification: {problems[0]}')
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        try:
            stage.parent.rmdir()            # only when empty (no other shipment in flight)
        except OSError:
            pass
    if catalog is not None:
        catalog.add_bag(final)
    return final


def clear_incoming(layout: DataLayout) -> int:
    """Remove what interrupted shipments left under `episodes/<cell>/.incoming/` (never an episode:
    those are renamed out before they count). Call only while nothing ships into the store."""
    n = 0
    if layout.episodes.is_dir():
        for cell in layout.episodes.iterdir():
            inc = cell / INCOMING
            if inc.is_dir():
                n += sum(1 for _ in inc.iterdir())
                shutil.rmtree(inc, ignore_errors=True)
    return n
