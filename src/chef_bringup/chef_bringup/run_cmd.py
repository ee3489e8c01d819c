"""`chef run <graph> [arg:=value ...]`: start a node graph here, as `ros2 launch` would."""

from __future__ import annotations

import argparse
from pathlib import Path

from chef_contract.graph import find_graph, load_graph

EPILOGS = {'run': """\
examples:
  chef run selfcheck --duration 5          two probe nodes; proves DDS works on this machine
  chef run sim                             one MuJoCo cell: bridge, policy, safety filter, recorder
  chef run sim cells:=4 clock:=lockstep    four cells in namespaces /cell0../cell3
  chef run sim --dry-run                   print the processes and their --ros-args, start nothing
  chef graph show sim                      the graph's arguments and their defaults

The graph files live in config/graphs/; launch/sim.launch.py and chef_bringup's launch files read
the same files, so `ros2 launch` on a full ROS 2 install starts exactly these processes.
"""}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('graph', help='graph name (config/graphs/<name>.yaml) or path to a graph file')
    p.add_argument('assignments', nargs='*', metavar='arg:=value', help='graph arguments, launch-style')
    p.add_argument('--domain', type=int, default=None,
                   help='ROS_DOMAIN_ID for the graph (default: $ROS_DOMAIN_ID, else 42)')
    p.add_argument('--duration', type=float, default=None, help='stop the graph after this many seconds')
    p.add_argument('--log-dir', type=Path, default=None, help='also write each node\'s output here')
    p.add_argument('--grace', type=float, default=10.0,
                   help='seconds a node gets to exit after SIGINT before SIGTERM (default 10)')
    p.add_argument('--dry-run', action='store_true', help='print the commands, start nothing')


def parse_assignments(items):
    out = {}
    for item in items:
        if ':=' not in item:
            raise ValueError(f'graph argument {item!r} must look like name:=value')
        k, v = item.split(':=', 1)
        out[k] = v
    return out


def main(args) -> int:
    from chef_bringup.runner import GraphError, node_command, run_graph
    graph = load_graph(find_graph(args.graph))
    specs = graph.resolve(parse_assignments(args.assignments))
    if args.dry_run:
        missing = 0
        for s in specs:
            print(f'{s.fqn}{"" if s.required else "  (optional)"}')
            try:
                print('   ', ' '.join(node_command(s)))
            except GraphError as exc:      # e.g. ros2_control / MoveIt nodes of the real cell
                missing += 1
                print(f'    <{exc}>')
                print('   ', s.package, s.executable, ' '.join(s.ros_args()))
        if missing:
            print(f'{missing} node(s) need packages that are not installed here; `chef run` would refuse '
                  'to start this graph.')
        return 0
    result = run_graph(specs, domain_id=args.domain, log_dir=args.log_dir, duration_s=args.duration,
                       grace_s=args.grace)
    return result.exit_code
