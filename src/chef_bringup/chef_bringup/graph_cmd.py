"""`chef graph ls | show <graph>`: what graphs exist and what they start."""

from __future__ import annotations

from chef_contract.graph import default_config_dir, find_graph, load_graph


def add_arguments(p):
    p.add_argument('action', choices=('ls', 'show'), help='ls: list graphs; show: arguments and nodes')
    p.add_argument('graph', nargs='?', help='graph name for show')


def main(args) -> int:
    root = default_config_dir() / 'graphs'
    if args.action == 'ls':
        for path in sorted(root.glob('*.yaml')):
            g = load_graph(path)
            print(f'{g.name:12s} {g.description}')
        return 0
    if not args.graph:
        raise ValueError('chef graph show needs a graph name')
    g = load_graph(find_graph(args.graph))
    print(f'{g.name}: {g.description}\n  file: {g.path}\narguments:')
    for a in g.arguments.values():
        choices = f' {a.choices}' if a.choices else ''
        print(f'  {a.name}:={a.default!s:10s} ({a.type}{choices}) {a.help}')
    print('nodes (with default arguments):')
    for s in g.resolve({}):
        print(f'  {s.fqn:32s} {s.package}/{s.executable}{"" if s.required else "  (optional)"}'
              f'{"  - " + s.description if s.description else ""}')
    return 0
