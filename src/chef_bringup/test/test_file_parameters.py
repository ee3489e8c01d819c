"""Graph `file_parameters`: a parameter whose value is a file's text (robot_description from a URDF).

The text is `$(arg)`-substituted, reaches a real rclpy node intact through the `-p name:=...`
literal that `chef run` uses, and undeclared file parameters are caught by the static check.
"""

import pytest

from chef_bringup.graph_check import check_graph
from chef_bringup.workspace import workspace_root
from chef_contract.config import ConfigError
from chef_contract.graph import load_graph
from chef_contract.testing import unique_domain_id

# Multi-line, both quote kinds, colons, a YAML-looking line, backslashes and non-ASCII text.
URDF = """<?xml version="1.0"?>
<robot name="cell">
  <!-- robot_ip: $(robot_ip) ; 'single' "double" -->
  <ros2_control name="arm" type="system">
    <hardware><param name="robot_ip">$(robot_ip)</param><param name="p">a: [1, 2]</param></hardware>
  </ros2_control>
  <link name="base_link"/>  <!-- \\back\\slash, µm, {cell} -->
</robot>
"""

GRAPH = """
name: g
arguments:
  robot_ip: {default: 192.168.1.10}
  hw: {default: real, choices: [real, mock]}
nodes:
  - name: n
    package: chef_bringup
    executable: dds_probe_sub
    file_parameters: {robot_description: 'robot/cell.$(hw).urdf'}
"""


def make_graph(tmp_path, graph=GRAPH, urdf=URDF):
    (tmp_path / 'graphs').mkdir()
    (tmp_path / 'robot').mkdir()
    (tmp_path / 'robot' / 'cell.real.urdf').write_text(urdf)
    (tmp_path / 'robot' / 'cell.mock.urdf').write_text('<robot name="mock"/>')
    p = tmp_path / 'graphs' / 'g.yaml'
    p.write_text(graph)
    return load_graph(p)


def test_file_text_is_substituted_and_path_chosen_by_argument(tmp_path):
    g = make_graph(tmp_path)
    spec = g.resolve({'robot_ip': '10.0.0.7'})[0]
    text = spec.file_parameters['robot_description']
    assert '<param name="robot_ip">10.0.0.7</param>' in text and '$(robot_ip)' not in text
    assert '{cell}' in text                       # only $(arg) is substituted inside files
    assert spec.file_parameter_paths['robot_description'].endswith('cell.real.urdf')
    mock = g.resolve({'hw': 'mock'})[0]
    assert mock.file_parameters == {'robot_description': '<robot name="mock"/>'}


def test_missing_file_and_unknown_argument_in_text_fail_clearly(tmp_path):
    g = make_graph(tmp_path, urdf=URDF.replace('$(robot_ip)', '$(robot_adress)'))
    with pytest.raises(ConfigError, match=r"file parameter 'robot_description'.*robot_adress"):
        g.resolve({})
    (tmp_path / 'robot' / 'cell.mock.urdf').unlink()
    with pytest.raises(ConfigError, match='does not exist'):
        g.resolve({'hw': 'mock'})


def test_text_reaches_a_real_node_unchanged_through_ros_args(tmp_path):
    import rclpy
    from rclpy.node import Node

    spec = make_graph(tmp_path).resolve({})[0]
    expected = spec.file_parameters['robot_description']
    ctx = rclpy.Context()
    rclpy.init(args=['prog'] + spec.ros_args(), context=ctx, domain_id=unique_domain_id())
    try:
        node = Node('n', context=ctx, automatically_declare_parameters_from_overrides=True)
        value = node.get_parameter('robot_description').value
        assert value == expected
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_static_check_reports_file_parameters_the_node_does_not_declare(tmp_path):
    g = make_graph(tmp_path)
    problems = check_graph(g, workspace_root())
    assert any("file parameter 'robot_description' is not declared" in p for p in problems)


def test_config_dir_is_a_builtin_substitution(tmp_path):
    g = make_graph(tmp_path, GRAPH.replace(
        "file_parameters: {robot_description: 'robot/cell.$(hw).urdf'}",
        "parameters: [{calibration: '$(config_dir)/robot/cell.real.urdf'}]"))
    spec = g.resolve({})[0]
    assert spec.parameters['calibration'] == str((tmp_path / 'robot' / 'cell.real.urdf').resolve())
