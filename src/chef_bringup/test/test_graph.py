"""Graph descriptions: resolution, substitution, errors, and the static launch checks."""


import pytest

from chef_bringup.graph_check import check_graph
from chef_bringup.workspace import workspace_root
from chef_contract.config import ConfigError
from chef_contract.graph import load_graph

WS = workspace_root()
GRAPHS = sorted((WS / 'config' / 'graphs').glob('*.yaml'))


def write_graph(tmp_path, text):
    (tmp_path / 'graphs').mkdir(exist_ok=True)
    (tmp_path / 'p.yaml').write_text('/**/n:\n  ros__parameters: {a: 1}\n')
    p = tmp_path / 'graphs' / 'g.yaml'
    p.write_text(text)
    return load_graph(p)


GRAPH = """
name: g
arguments:
  cells: {default: 1, type: int}
  fast: {default: false, type: bool}
  mode: {default: a, choices: [a, b]}
nodes:
  - {name: n, package: chef_bringup, executable: dds_probe_sub, namespace: 'cell{cell}',
     parameters: [p.yaml, {x: $(fast), y: 'pre_$(mode)'}], remappings: {in: 'cell{cell}/out'}}
  - {name: once, package: chef_bringup, executable: dds_probe_pub, required: false, condition: $(fast)}
"""


def test_per_cell_nodes_are_replicated_with_substitutions(tmp_path):
    g = write_graph(tmp_path, GRAPH)
    specs = g.resolve({'cells': '3', 'fast': 'true', 'mode': 'b'})
    assert [s.fqn for s in specs] == ['/cell0/n', '/cell1/n', '/cell2/n', '/once']
    s = specs[1]
    assert s.parameters == {'x': True, 'y': 'pre_b'}
    assert s.remappings == [('in', 'cell1/out')]
    assert s.parameter_files == [str((tmp_path / 'p.yaml').resolve())]
    args = s.ros_args()
    assert args[:3] == ['--ros-args', '-r', '__node:=n'] and '__ns:=/cell1' in args
    assert specs[3].required is False
    assert [s.fqn for s in g.resolve({})] == ['/cell0/n']     # condition false -> node absent


def test_bad_arguments_and_files_fail_clearly(tmp_path):
    g = write_graph(tmp_path, GRAPH)
    with pytest.raises(ConfigError, match='no argument'):
        g.resolve({'cels': 2})
    with pytest.raises(ConfigError, match='not in'):
        g.resolve({'mode': 'c'})
    with pytest.raises(ConfigError, match='expected int'):
        g.resolve({'cells': 'two'})
    bad = write_graph(tmp_path, GRAPH.replace('p.yaml', 'missing.yaml'))
    with pytest.raises(ConfigError, match='does not exist'):
        bad.resolve({})
    with pytest.raises(ConfigError, match='unknown keys'):
        write_graph(tmp_path, GRAPH.replace('executable: dds_probe_pub', 'executable: x, exe: y'))


def test_static_check_catches_undeclared_parameters(tmp_path):
    g = write_graph(tmp_path, GRAPH)
    problems = check_graph(g, WS, [{'fast': True}])
    assert any("sets 'a'" in p for p in problems)
    assert any("inline parameter 'x'" in p for p in problems)


@pytest.mark.parametrize('path', GRAPHS, ids=[p.stem for p in GRAPHS])
def test_every_graph_passes_the_static_launch_checks(path):
    g = load_graph(path)
    sets = [{}]
    if 'cells' in g.arguments:
        sets.append({'cells': 2})
    assert check_graph(g, WS, sets) == []


def test_launch_files_read_the_graph_descriptions():
    launch_files = list((WS / 'launch').glob('*.launch.py')) + list(
        (WS / 'src' / 'chef_bringup' / 'launch').glob('*.launch.py'))
    assert launch_files
    for f in launch_files:
        text = f.read_text()
        assert 'generate_graph_launch_description' in text, f
        name = f.name.removesuffix('.launch.py')
        assert (WS / 'config' / 'graphs' / f'{name}.yaml').is_file(), f'{f} has no graph {name}.yaml'
