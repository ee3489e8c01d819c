"""config/multi_host/lab.yaml and chef_loop.lab (docs/multi_host.md): the committed lab file loads,
every cell's `chef run real` line resolves against the real graph, each machine gets the discovery
settings of its side (cell: its own domain, the hub as static peer; hub: every cell host), and bad
lab files stop with one line. ROS-free, < 1 s."""

import pytest

from chef_contract.config import ConfigError
from chef_contract.graph import default_config_dir
from chef_loop.lab import cell_command, cell_env, host_scripts, hub_env, load_lab, main

LAB = default_config_dir() / 'multi_host' / 'lab.yaml'


def test_committed_lab_file_gives_each_machine_its_settings():
    lab = load_lab(LAB)
    assert len(lab.cells) >= 2 and len({c.domain for c in lab.cells}) == len(lab.cells)
    hub = hub_env(lab)
    assert hub['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
    assert hub['ROS_STATIC_PEERS'].split(';') == sorted(c.host for c in lab.cells)
    for c in lab.cells:
        env = cell_env(lab, c)
        assert env['ROS_DOMAIN_ID'] == str(c.domain) and env['ROS_STATIC_PEERS'] == lab.hub
        cmd = cell_command(lab, c)
        assert cmd[:5] == ['chef', 'run', 'real', '--domain', str(c.domain)]
        assert f'cell:={c.cell}' in cmd and f'data_dir:={c.data_dir}' in cmd
    text = host_scripts(lab, LAB)
    assert f'chef status --lab {LAB}' in text and text.count('chef run real') == len(lab.cells)


def test_discovery_server_replaces_multicast_and_peers(tmp_path):
    f = tmp_path / 'lab.yaml'
    f.write_text('hub: 10.0.0.1\ndiscovery_server: "10.0.0.1:11811"\n'
                 'cells: [{cell: 0, host: 10.0.0.2, domain: 3}]\n')
    lab = load_lab(f)
    assert hub_env(lab) == {'ROS_DISCOVERY_SERVER': '10.0.0.1:11811'}
    assert cell_env(lab, lab.cells[0]) == {'ROS_DISCOVERY_SERVER': '10.0.0.1:11811', 'ROS_DOMAIN_ID': '3'}


@pytest.mark.parametrize('text, error', [
    ('hub: h\ncells: []\n', 'no cells'),
    ('cells: [{cell: 0, host: a, domain: 3}]\n', 'hub is empty'),
    ('hub: h\ncells: [{cell: 0, host: a, domain: 3}, {cell: 1, host: b, domain: 3}]\n', 'share domain 3'),
    ('hub: h\ncells: [{cell: 0, host: a, domain: 3}, {cell: 0, host: b, domain: 4}]\n', 'share cell 0'),
    ('hub: h\ncells: [{cell: 0, domain: 3}]\n', 'without host'),
    ('hub: h\ncells: [{cell: 0, host: a, domain: 300}]\n', 'above the maximum'),
    ('hub: h\ncells: [{cell: 0, host: a, domain: 3, robot: x}]\n', r"unknown config key 'cells\[0\]\.robot'"),
    ('hub: h\ndiscovery_range: WAN\ncells: [{cell: 0, host: a, domain: 3}]\n', 'not one of'),
    ('hub: h\ncells: [{cell: 0, host: a, domain: 3, graph_args: {cell: "2"}}]\n', 'may not set cell'),
])
def test_bad_lab_files_stop_with_one_line(tmp_path, text, error):
    f = tmp_path / 'lab.yaml'
    f.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_lab(f)


def test_unknown_graph_argument_is_refused(tmp_path, capsys):
    f = tmp_path / 'lab.yaml'
    f.write_text('hub: h\ncells: [{cell: 0, host: a, domain: 3, graph_args: {robot_address: x}}]\n')
    assert main([str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('chef_loop.lab: error: cell 0:') and 'robot_address' in err and err.count('\n') == 1
