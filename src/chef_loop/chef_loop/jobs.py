"""What the loop asks of a cell and what it gets back (ROS-free): an episode job, its outcome.

The stages (chef_loop.stages) plan jobs and read outcomes; `chef_loop.fleet.CellFleet` (rclpy) runs
them on cells. Keeping these types here lets the loop's algorithm be imported and tested without
ROS (test_import_without_ros.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from chef_contract.events import EpisodeEvent


@dataclass
class EpisodeJob:
    triplet: str
    seed: int
    tags: Dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    request_id: str = ''


@dataclass
class EpisodeOutcome:
    job: EpisodeJob
    cell: str
    event: Optional[EpisodeEvent]        # end (or the last abort)
    ok: bool
    reason: str = ''

    @property
    def success(self) -> bool:
        return bool(self.ok and self.event is not None and self.event.success)


class FleetError(RuntimeError):
    """The cells could not run the jobs (graph stopped, cells not ready)."""
