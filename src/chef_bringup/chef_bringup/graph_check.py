"""Static checks of graph descriptions, for places where `ros2 launch` cannot run them.

For every node of a workspace package: the executable is a declared console-script entry point,
its module declares the node's parameters (`NODE_PARAMS[executable]`, a dataclass), and every key
in its parameter files and inline parameters is a parameter the node declares. Nodes of packages
outside the workspace (ros2_control, MoveIt, drivers) are checked on a real ROS 2 install by the
launch_testing tests; here only their parameter files are parsed.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
from importlib import metadata
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import yaml

from chef_contract.graph import Graph, NodeSpec

ALWAYS_ALLOWED = {'use_sim_time'}


def workspace_packages(ws: Path) -> set:
    return {p.parent.name for p in (ws / 'src').glob('*/package.xml')}


def _entry_point(package: str, executable: str):
    dist = metadata.distribution(package.replace('_', '-'))
    for ep in dist.entry_points:
        if ep.group == 'console_scripts' and ep.name == executable:
            return ep
    return None


def node_params_class(package: str, executable: str):
    """The Params dataclass an executable declares (module attribute NODE_PARAMS[executable])."""
    ep = _entry_point(package, executable)
    if ep is None:
        return None
    module = importlib.import_module(ep.module)
    table = getattr(module, 'NODE_PARAMS', None)
    if not table or executable not in table:
        return None
    return table[executable]


def _applies(key: str, spec: NodeSpec) -> bool:
    """Does a top-level key of a ROS parameter file address this node?"""
    fqn = spec.fqn
    key = key if key.startswith('/') else '/' + key if key != '**' else '/**'
    if key == '/' + spec.name:
        return True
    pattern = key.replace('/**', '/*')
    return fnmatch.fnmatchcase(fqn, pattern) or key in ('/**', '/**/' + spec.name)


def param_file_keys(path: str, spec: NodeSpec) -> Dict[str, set]:
    """{top-level key: parameter names} of the sections of `path` that address `spec`."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    out = {}
    for key, section in data.items():
        if not isinstance(section, dict) or 'ros__parameters' not in section:
            raise ValueError(f'{path}: section {key!r} lacks ros__parameters')
        if _applies(str(key), spec):
            out[str(key)] = set((section['ros__parameters'] or {}).keys())
    return out


def check_node(spec: NodeSpec, ws_packages: Iterable[str]) -> List[str]:
    problems: List[str] = []
    if spec.package not in set(ws_packages):
        for f in spec.parameter_files:
            try:
                yaml.safe_load(Path(f).read_text())
            except yaml.YAMLError as exc:
                problems.append(f'{spec.fqn}: {f} is not valid YAML: {exc}')
        return problems
    try:
        ep = _entry_point(spec.package, spec.executable)
    except metadata.PackageNotFoundError:
        return [f'{spec.fqn}: package {spec.package} is not installed']
    if ep is None:
        return [f'{spec.fqn}: {spec.executable!r} is not a console_scripts entry point of {spec.package}']
    cls = node_params_class(spec.package, spec.executable)
    if cls is None:
        return [f'{spec.fqn}: module {ep.module} does not declare NODE_PARAMS[{spec.executable!r}]']
    declared = {f.name for f in dataclasses.fields(cls)} | ALWAYS_ALLOWED
    for f in spec.parameter_files:
        sections = param_file_keys(f, spec)
        if not sections:
            problems.append(f'{spec.fqn}: parameter file {f} has no section for this node '
                            f'(use "/**/{spec.name}:" or "{spec.fqn}:")')
        for key, names in sections.items():
            for n in sorted(names - declared):
                problems.append(f'{spec.fqn}: {f} [{key}] sets {n!r}, which the node does not declare')
    for n in sorted(set(spec.parameters) - declared):
        problems.append(f'{spec.fqn}: inline parameter {n!r} is not declared by the node')
    for n in sorted(set(spec.file_parameters) - declared):
        problems.append(f'{spec.fqn}: file parameter {n!r} is not declared by the node')
    return problems


def check_graph(graph: Graph, ws: Path, argument_sets: Optional[List[dict]] = None) -> List[str]:
    pk = workspace_packages(ws)
    problems: List[str] = []
    for values in argument_sets or [{}]:
        for spec in graph.resolve(values):
            problems += check_node(spec, pk)
    return sorted(set(problems))
