"""Turn a graph description (config/graphs/*.yaml) into a ROS 2 LaunchDescription.

Used by launch/sim.launch.py and chef_bringup's launch files; `chef run` executes the same
description without `launch`. Graph arguments become launch arguments (`ros2 launch ... cells:=2`).
File parameters (`file_parameters:` in a graph, e.g. robot_description from a URDF) are passed as
`ParameterValue(text, value_type=str)` so launch_ros never re-parses the text as YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from chef_contract.graph import _text, find_graph, load_graph


def generate_graph_launch_description(graph: Union[str, Path]):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    g = load_graph(find_graph(str(graph)))
    declared = [
        DeclareLaunchArgument(a.name, default_value=_text(a.default), description=a.help,
                              **({'choices': [_text(c) for c in a.choices]} if a.choices else {}))
        for a in g.arguments.values()]

    def nodes(context, *args, **kwargs):
        values = {name: LaunchConfiguration(name).perform(context) for name in g.arguments}
        actions = []
        for spec in g.resolve(values):
            params = list(spec.parameter_files) + ([spec.parameters] if spec.parameters else [])
            if spec.file_parameters:
                params.append({k: ParameterValue(text, value_type=str)
                               for k, text in spec.file_parameters.items()})
            actions.append(Node(
                package=spec.package, executable=spec.executable, name=spec.name,
                namespace=spec.namespace or '', parameters=params, remappings=spec.remappings,
                arguments=spec.arguments, additional_env=spec.env or None, output='screen',
                emulate_tty=True,
                on_exit=Shutdown(reason=f'required node {spec.fqn} exited') if spec.required else None))
        return actions

    return LaunchDescription(declared + [OpaqueFunction(function=nodes)])
