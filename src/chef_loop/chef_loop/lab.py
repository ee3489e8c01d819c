"""A lab of real cells on separate machines (docs/multi_host.md), ROS-free.

`config/multi_host/lab.yaml` names the hub (the machine of chef loop / chef status / the trainer and
the central episode store) and, per cell, its machine, its own ROS domain and its real-graph
arguments. From it:

* `cell_env(lab, cell)` / `cell_command(lab, cell)`: the environment and the `chef run real` line
  for that cell's machine (the whole cell graph runs there: drivers, Servo, adapters, pixel reward,
  policy, safety filter, recorder);
* `hub_env(lab)`: the discovery settings for the hub's processes, so `chef status --lab lab.yaml`
  watches every cell's domain across the LAN.

`python -m chef_loop.lab config/multi_host/lab.yaml` prints both for every machine.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from chef_contract.config import ConfigError, field_, load_config
from chef_contract.domains import MAX_DOMAIN_ID

DISCOVERY_RANGES = ('SUBNET', 'LOCALHOST', 'SYSTEM_DEFAULT')


@dataclass
class LabCell:
    cell: int = field_(0, min=0, max=999, help='cell id: namespace cell<id>, `chef run real cell:=<id>`')
    host: str = field_('', help="the cell's machine (hostname or IP address); its whole graph runs there")
    domain: int = field_(0, min=0, max=MAX_DOMAIN_ID, help="the cell's own ROS domain (ROS_DOMAIN_ID there)")
    data_dir: str = field_('/var/lib/chef/data', help="the cell's local episode store (the recorder's data_dir)")
    graph_args: Dict[str, str] = field_(default_factory=dict,
                                        help='real-graph arguments (config/graphs/real.yaml: robot_ip, triplet, '
                                             'reset_mode, policy, ...)')


@dataclass
class LabConfig:
    name: str = field_('lab', help='the lab, for humans')
    hub: str = field_('', help='machine of chef loop / chef status / trainer and the central store')
    discovery_range: str = field_('SUBNET', choices=DISCOVERY_RANGES,
                                  help='ROS_AUTOMATIC_DISCOVERY_RANGE on every machine (SUBNET: multicast '
                                       'on the LAN segment)')
    static_peers: bool = field_(True, help='also set ROS_STATIC_PEERS (hub <-> each cell host): unicast '
                                           'discovery where multicast does not reach')
    discovery_server: str = field_('', help="'' or host:port of a Fast DDS discovery server "
                                            '(ROS_DISCOVERY_SERVER); replaces multicast and static peers. Clients '
                                            'of one server match across domain ids (Fast DDS by design): the '
                                            'cells are then kept apart by their namespaces only')
    cells: List[LabCell] = field(default_factory=list)


def load_lab(path) -> LabConfig:
    lab = load_config(LabConfig, Path(path))
    where = f'{path}'
    if not lab.cells:
        raise ConfigError(f'{where}: no cells')
    if not lab.hub:
        raise ConfigError(f'{where}: hub is empty (the machine of chef loop / chef status)')
    for key in ('cell', 'domain', 'host'):
        values = [getattr(c, key) for c in lab.cells]
        dup = sorted({v for v in values if values.count(v) > 1})
        if key == 'host':
            if '' in values:
                raise ConfigError(f'{where}: a cell without host')
            continue                        # two cells may share a machine, not a domain or an id
        if dup:
            raise ConfigError(f'{where}: cells share {key} {dup[0]} (one {key} per cell)')
    for c in lab.cells:
        if 'cell' in c.graph_args or 'data_dir' in c.graph_args:
            raise ConfigError(f'{where}: cell {c.cell}: graph_args may not set cell or data_dir (they are keys '
                              'of the cell itself)')
    if lab.discovery_server and ':' not in lab.discovery_server:
        raise ConfigError(f'{where}: discovery_server {lab.discovery_server!r}: expected host:port')
    return lab


def _discovery(lab: LabConfig, peers: List[str]) -> Dict[str, str]:
    if lab.discovery_server:
        return {'ROS_DISCOVERY_SERVER': lab.discovery_server}
    env = {'ROS_AUTOMATIC_DISCOVERY_RANGE': lab.discovery_range}
    if lab.static_peers and peers:
        env['ROS_STATIC_PEERS'] = ';'.join(peers)
    return env


def hub_env(lab: LabConfig) -> Dict[str, str]:
    """Discovery settings of the hub's processes (they join every cell's domain themselves)."""
    return _discovery(lab, sorted({c.host for c in lab.cells}))


def cell_env(lab: LabConfig, cell: LabCell) -> Dict[str, str]:
    return dict(_discovery(lab, [lab.hub]), ROS_DOMAIN_ID=str(cell.domain))


def cell_command(lab: LabConfig, cell: LabCell) -> List[str]:
    """`chef run real ...` for the cell's machine; the arguments are checked against the real graph."""
    from chef_contract.graph import find_graph, load_graph
    args = dict(cell.graph_args, cell=str(cell.cell), data_dir=cell.data_dir)
    try:
        load_graph(find_graph('real')).resolve(args)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f'cell {cell.cell}: {exc}') from None
    return ['chef', 'run', 'real', '--domain', str(cell.domain)] + [f'{k}:={v}' for k, v in args.items()]


def host_scripts(lab: LabConfig, path) -> str:
    """What to run on each machine, as shell lines (`path`: the lab file, for the hub's line)."""
    out = [f'# lab {lab.name}: on the hub {lab.hub}',
           'export ' + ' '.join(f'{k}={shlex.quote(v)}' for k, v in hub_env(lab).items()),
           f'chef status --lab {shlex.quote(str(path))}', '']
    for c in lab.cells:
        out += [f'# cell{c.cell} on {c.host} (ROS domain {c.domain})',
                'export ' + ' '.join(f'{k}={shlex.quote(v)}' for k, v in cell_env(lab, c).items()),
                ' '.join(shlex.quote(a) for a in cell_command(lab, c)), '']
    return '\n'.join(out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print('usage: python -m chef_loop.lab <lab.yaml>', file=sys.stderr)
        return 2
    try:
        print(host_scripts(load_lab(argv[0]), argv[0]))
    except ConfigError as exc:
        print(f'chef_loop.lab: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
