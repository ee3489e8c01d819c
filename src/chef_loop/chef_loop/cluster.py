"""Where a CHEF run's work runs when `ray_address` points at a Ray cluster (ROS-free, Ray-light).

`ray_address` (top level of the loop config) set: every stage uses the cluster.

* Cells: sim cells run as Ray actors (chef_loop.ray_cells.CellWorker), `cluster.cells_per_worker`
  cells per actor (ceil(cells.cells / cells_per_worker) actors, SPREAD over the nodes), each its own
  graph process in its own ROS domain on its node, recording into a store local to that node; each
  published episode is shipped to the run's store (chef_recorder.shipping).
* Explore trials and Fine-tune training: Ray tasks that request `gpus_per_trial` GPUs (auto: one
  when the cluster has any) and, unless `shared_storage`, run on the driver's node, where the
  store and the run directory are.

Unset (''), nothing changes: cells are subprocesses of the loop, Explore uses a local Ray.
`explore.ray_address` (older key) still puts only Explore on a cluster.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict

from chef_contract.config import ConfigError, field_


@dataclass
class ClusterConfig:
    cells_per_worker: int = field_(1, min=1, max=32, help='cells per Ray actor (one graph process and ROS '
                                                         'domain per actor)')
    cpus_per_cell: float = field_(1.0, min=0.1, help='Ray CPUs a cell worker requests per cell it runs')
    gpus_per_cell: float = field_(0.0, min=0.0, help='Ray GPUs a cell worker requests per cell (GPU '
                                                     'rendering: MuJoCo EGL on the GPU Ray assigns)')
    cell_resources: Dict[str, float] = field_(default_factory=dict,
                                              help="custom Ray resources every cell worker requests, e.g. "
                                                   "{chef_cell: 1}: cells only on nodes started with "
                                                   "--resources '{\"chef_cell\": N}'")
    gpus_per_trial: float = field_(-1.0, min=-1.0, help='GPUs each Explore trial and the Fine-tune training '
                                                        'request on the cluster (-1 = auto: 1 when the '
                                                        'cluster has a GPU, else 0)')
    shared_storage: bool = field_(False, help='the run and data directories are mounted at the same path '
                                              'on every node (then training runs on any node; false: '
                                              "on the driver's node, where they are)")


def cell_workers(cells: int, per_worker: int) -> int:
    return int(math.ceil(cells / per_worker))


def check_cluster(cfg) -> None:
    """Load-time rules of a LoopConfig's placement keys."""
    if cfg.ray_address and cfg.explore.ray_address and cfg.ray_address != cfg.explore.ray_address:
        raise ConfigError(f'ray_address {cfg.ray_address!r} and explore.ray_address '
                          f'{cfg.explore.ray_address!r} differ (set one: ray_address runs every stage there)')


def explore_address(cfg) -> str:
    """The Ray Explore uses: the loop's cluster, else explore.ray_address ('' = a local Ray)."""
    return cfg.ray_address or cfg.explore.ray_address


def without_placement(cfg):
    """The config with every where-and-how-long key at its default: what a run's identity is checked
    on, so a run started on one machine can be resumed on a cluster (and back), with more patient
    wall-clock timeouts on a loaded machine, other ROS domain ids, or more iterations (extending a
    run: finished iterations are kept and skipped)."""
    from chef_loop.config import CellsConfig, ExploreConfig, LoopConfig
    default_explore, default_cells, default_loop = ExploreConfig(), CellsConfig(), LoopConfig()
    cells = dataclasses.replace(cfg.cells, start_timeout_s=default_cells.start_timeout_s,
                                episode_timeout_s=default_cells.episode_timeout_s,
                                domain_range=default_cells.domain_range)
    return dataclasses.replace(cfg, ray_address='', cluster=ClusterConfig(), iterations=default_loop.iterations,
                               cells=cells,
                               explore=dataclasses.replace(cfg.explore, ray_address=default_explore.ray_address))


def trial_gpus(cluster: ClusterConfig) -> float:
    """GPUs per training task on the connected cluster (ray initialised)."""
    if cluster.gpus_per_trial >= 0:
        return float(cluster.gpus_per_trial)
    import ray
    return 1.0 if ray.cluster_resources().get('GPU', 0) >= 1 else 0.0


def driver_node_resource() -> Dict[str, float]:
    """A Ray resource request that only the driver's node satisfies ({'node:<ip>': 0.001})."""
    import ray
    me = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get('NodeID') == me:
            return {f'node:{node["NodeManagerAddress"]}': 0.001}
    raise RuntimeError(f'ray: the driver\'s node {me} is not among the cluster\'s nodes')


def training_resources(cluster: ClusterConfig) -> Dict[str, float]:
    """Extra Ray resources of a training task (trial or fine-tune): GPUs, and the driver's node
    unless the storage is shared (ray initialised)."""
    out: Dict[str, float] = {}
    gpus = trial_gpus(cluster)
    if gpus:
        out['GPU'] = gpus
    if not cluster.shared_storage:
        out.update(driver_node_resource())
    return out


def train_on_cluster(cfg, run_dir, fn, args, kwargs, log=print):
    """`fn(*args, **kwargs)` (chef_loop.explore.train_policy) as one Ray task on the cluster with
    `training_resources`; torch's threads = the task's CPUs (explore.torch_threads)."""
    import ray

    from chef_loop.ray_session import ray_session
    with ray_session(run_dir, num_cpus=0, address=cfg.ray_address, log=log):
        extra = training_resources(cfg.cluster)
        gpus = extra.pop('GPU', 0.0)
        where = '' if cfg.cluster.shared_storage else ", on the driver's node (the store is here)"
        log(f'  training on the Ray cluster ({cfg.ray_address}): {cfg.explore.torch_threads} CPU(s), '
            f'{gpus:g} GPU(s){where}')
        task = ray.remote(fn).options(num_cpus=cfg.explore.torch_threads, num_gpus=gpus,
                                      resources=extra or None, max_retries=0)
        return ray.get(task.remote(*args, **kwargs))
