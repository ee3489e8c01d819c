"""Cell backends: which node graphs a CHEF stage's cell session starts, and with which arguments.

A stage asks for cells with *stage arguments* (the sim graph's names: `policy`, `noise`,
`deterministic`, `train`, ...); a backend turns them into graph processes:

* `SimCells` (cells.backend: sim): one `chef run sim cells:=N ...` for every cell (the sim bridge
  stands in for the hardware; lockstep or real-time clock).
* `RealCells` (cells.backend: real): one `chef run real cell:=i hardware:=<cells.hardware> ...` per
  cell, all on the session's ROS domain, namespaces cell0..N-1 as in sim, so the same CellFleet drives
  them and their recorders write into the same store (episodes tagged source 'real'). With
  hardware: mujoco this is chef_sim's emulator of the drivers and Servo (docs/real_cell.md §2a).
  A real cell holds one physical triplet (`cells.triplet`), has no trainer node in its graph (the
  online learner of Collect runs only on sim cells for now: collect.episodes must be 0) and runs on
  wall time.

ROS-free: returns argument lists; chef_loop.cells.CellSession starts and stops the processes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List

from chef_contract.config import ConfigError

EMULATOR_NODE = 'hardware_emulator'   # the node name of chef_sim's emulator in config/graphs/real.yaml
# stage argument -> real-graph argument (None: meaningless on a real cell, dropped)
_REAL_ARGS = {'policy': 'policy', 'noise': 'policy_noise', 'deterministic': 'deterministic', 'record': 'record',
              'data_dir': 'data_dir', 'episode_steps': 'episode_steps',
              'cells': None, 'clock': None, 'preset': None, 'image_size': None}
_SIM_ONLY = ('train', 'learner', 'learner_overrides', 'trainer_run_dir', 'trainer_init', 'trainer_max_updates')


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    return str(v)


def chef_run(graph: str, domain: int, args: Dict[str, Any]) -> List[str]:
    return [sys.executable, '-m', 'chef_bringup.cli', 'run', graph, '--domain', str(domain), '--grace', '15',
            *(f'{k}:={_literal(v)}' for k, v in args.items())]


class SimCells:
    """All cells in one sim graph."""

    name = 'sim'

    def __init__(self, cells):
        self.cfg = cells

    def base_args(self, data_dir: Path) -> Dict[str, Any]:
        c = self.cfg
        return {'cells': c.cells, 'clock': c.clock, 'preset': c.preset, 'image_size': c.image_size,
                'images': c.images, 'episode_steps': c.episode_steps, 'record': True,
                'data_dir': str(Path(data_dir).resolve())}

    def commands(self, domain: int, args: Dict[str, Any]) -> List[List[str]]:
        return [chef_run('sim', domain, args)]


class RealCells:
    """One real-cell graph per cell (`hardware` from the config: the MuJoCo emulator here)."""

    name = 'real'

    def __init__(self, cells):
        self.cfg = cells

    def base_args(self, data_dir: Path) -> Dict[str, Any]:
        return {'episode_steps': self.cfg.episode_steps, 'record': True, 'data_dir': str(Path(data_dir).resolve())}

    def commands(self, domain: int, args: Dict[str, Any]) -> List[List[str]]:
        c = self.cfg
        if _truthy(args.get('train')):
            raise ConfigError('real cells have no trainer node: the online learner (collect.episodes) runs on '
                              'sim cells only')
        real: Dict[str, Any] = {'hardware': c.hardware, 'triplet': c.triplet, 'reset_mode': c.reset_mode}
        if c.hardware == 'mujoco' and c.reset_mode == 'service':
            real['reset_seed_node'] = EMULATOR_NODE       # emulated layouts follow the episode seeds
        for k, v in args.items():
            if k in _SIM_ONLY:
                continue
            if k not in _REAL_ARGS:
                raise ConfigError(f'stage argument {k!r} has no meaning on a real cell')
            if _REAL_ARGS[k] is not None:
                real[_REAL_ARGS[k]] = v
        real.update(c.real_graph_args)
        return [chef_run('real', domain, dict(real, cell=i)) for i in range(c.cells)]


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ('1', 'true', 'yes', 'on')


def make_backend(cells):
    return {'sim': SimCells, 'real': RealCells}[cells.backend](cells)


def check_real_cells(cfg) -> None:
    """A loop config for real cells: every stage triplet is the cells' one, no online learner."""
    c = cfg.cells
    bad = sorted({t for t in cfg.collect.triplets + cfg.execute.triplets if t != c.triplet})
    if bad:
        raise ConfigError(f'cells.backend real: every cell holds {c.triplet!r}; stages ask for {bad} '
                          '(set collect.triplets and execute.triplets to [cells.triplet])')
    if cfg.collect.episodes:
        raise ConfigError('cells.backend real: collect.episodes (the online learner) needs a trainer node; '
                          'real-cell graphs have none yet - set it to 0 (scripted_episodes still collect)')
