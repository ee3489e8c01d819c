"""Declarative node graphs: the one description that launch files and `chef run` both execute.

A graph file (config/graphs/<name>.yaml) looks like::

    name: sim
    description: One or more MuJoCo cells with policy, safety filter and recorder.
    arguments:
      cells: {default: 1, type: int, help: number of simulated cells}
      clock: {default: lockstep, choices: [lockstep, realtime], help: ...}
    nodes:
      - name: sim_bridge
        package: chef_sim
        executable: sim_bridge
        namespace: cell{cell}        # {cell} = cell index; the node is replicated per cell
        parameters: [sim_bridge.yaml, {clock_mode: $(clock)}]
        remappings: {}
        required: true               # its failure stops the whole graph
        condition: $(record)         # optional: node only runs when this is true; also
                                     # '$(hardware) == mujoco' / '$(hardware) != mujoco' (after
                                     # substitution, both sides compared as trimmed strings), and
                                     # several joined by ' and '
        file_parameters:             # optional: parameters whose value is the TEXT of a file
          robot_description: real/robot/rgb_cell.$(hardware).urdf

`file_parameters` maps a parameter name to a file (relative to the config directory, like parameter
files); the node gets the file's text as a string parameter, after `$(arg)` substitution of the
text itself (so a URDF can carry `$(robot_ip)`). This is how robot_state_publisher, the
controller_manager and MoveIt get `robot_description` without xacro; launch passes it as a
`ParameterValue(text, value_type=str)`, `chef run` as a quoted `-p name:="..."` literal.

`$(config_dir)` is always available: the absolute config directory (for path-valued parameters such
as a calibration file or a `file://` camera_info_url).

`$(arg)` substitutes an argument, `{cell}` the cell index of a per-cell node (a node is per-cell
when its namespace or name mentions `{cell}`). Parameter file paths are relative to the config
directory that holds `graphs/`. ROS-free: launch files turn NodeSpecs into launch_ros Node actions,
`chef run` into processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import yaml

from chef_contract.config import ConfigError

_ARG_RE = re.compile(r'\$\((\w+)\)')
_NODE_KEYS = {'name', 'package', 'executable', 'namespace', 'parameters', 'remappings', 'required',
              'condition', 'env', 'arguments', 'description', 'output', 'file_parameters'}
_ARG_KEYS = {'default', 'type', 'help', 'choices'}
_TYPES = {'int': int, 'float': float, 'bool': bool, 'str': str}


@dataclass
class NodeSpec:
    """One process of a resolved graph."""

    name: str
    package: str
    executable: str
    namespace: str = ''
    parameter_files: List[str] = field(default_factory=list)     # absolute paths
    parameters: Dict[str, Any] = field(default_factory=dict)     # inline overrides (after files)
    remappings: List[Tuple[str, str]] = field(default_factory=list)
    required: bool = True
    env: Dict[str, str] = field(default_factory=dict)
    arguments: List[str] = field(default_factory=list)
    description: str = ''
    file_parameters: Dict[str, str] = field(default_factory=dict)   # name -> file text (substituted)
    file_parameter_paths: Dict[str, str] = field(default_factory=dict)   # name -> absolute path

    @property
    def fqn(self) -> str:
        ns = self.namespace.strip('/')
        return f'/{ns}/{self.name}' if ns else f'/{self.name}'

    def ros_args(self) -> List[str]:
        """The `--ros-args ...` command-line tail equivalent to launch_ros' Node action."""
        out = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            out += ['-r', f'__ns:=/{self.namespace.strip("/")}']
        for f in self.parameter_files:
            out += ['--params-file', f]
        for k, v in self.parameters.items():
            out += ['-p', f'{k}:={_param_literal(v)}']
        for k, text in self.file_parameters.items():
            out += ['-p', f'{k}:={_string_literal(text)}']
        for a, b in self.remappings:
            out += ['-r', f'{a}:={b}']
        return out


def _text(v: Any) -> str:
    """Plain text of an argument value (for substitution inside a longer string)."""
    if isinstance(v, bool):
        return 'true' if v else 'false'
    return str(v)


def _param_literal(v: Any) -> str:
    """A value as a ROS parameter literal (`-p name:=<literal>`), quoting strings YAML would retype."""
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, str):
        try:
            same = yaml.safe_load(v) == v
        except yaml.YAMLError:
            same = False
        return v if same else yaml.safe_dump(v, default_style="'").strip().split('\n')[0]
    import json
    return json.dumps(v)


def _string_literal(text: str) -> str:
    """Any text (multi-line, quotes, colons) as a ROS parameter literal that stays a string.

    rcl parses `-p` values as YAML; a JSON string is a valid YAML double-quoted scalar.
    """
    import json
    return json.dumps(text)


@dataclass
class GraphArgument:
    name: str
    default: Any
    type: str = 'str'
    help: str = ''
    choices: Optional[List[Any]] = None

    def parse(self, value: Any) -> Any:
        tp = _TYPES[self.type]
        if isinstance(value, str) and tp is not str:
            parsed = yaml.safe_load(value)
        else:
            parsed = value
        if tp is float and isinstance(parsed, int) and not isinstance(parsed, bool):
            parsed = float(parsed)
        if not isinstance(parsed, tp) or (tp is int and isinstance(parsed, bool)):
            raise ConfigError(f'graph argument {self.name}: expected {self.type}, got {value!r}')
        if self.choices is not None and parsed not in self.choices:
            raise ConfigError(f'graph argument {self.name}: {parsed!r} not in {self.choices}')
        return parsed


@dataclass
class Graph:
    name: str
    description: str
    arguments: Dict[str, GraphArgument]
    nodes: List[Dict[str, Any]]
    config_dir: Path
    path: Path

    def parse_arguments(self, values: Mapping[str, Any]) -> Dict[str, Any]:
        unknown = set(values) - set(self.arguments)
        if unknown:
            raise ConfigError(f'graph {self.name!r} has no argument(s) {sorted(unknown)}; '
                              f'known: {sorted(self.arguments)}')
        out = {k: a.default for k, a in self.arguments.items()}
        for k, v in values.items():
            out[k] = self.arguments[k].parse(v)
        return out

    def resolve(self, values: Optional[Mapping[str, Any]] = None) -> List[NodeSpec]:
        args = self.parse_arguments(values or {})
        args.setdefault('config_dir', str(self.config_dir.resolve()))
        cells = int(args.get('cells', 1))
        specs: List[NodeSpec] = []
        for raw in self.nodes:
            if 'condition' in raw and not _condition(_subst(raw['condition'], args)):
                continue
            per_cell = '{cell}' in str(raw.get('namespace', '')) or '{cell}' in raw['name']
            for cell in (range(cells) if per_cell else [None]):
                specs.append(self._node(raw, args, cell))
        names = [s.fqn for s in specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError(f'graph {self.name!r}: duplicate node names {sorted(dup)}')
        return specs

    def _node(self, raw: Dict[str, Any], args: Dict[str, Any], cell: Optional[int]) -> NodeSpec:
        def s(v):
            if isinstance(v, list):
                return [s(x) for x in v]
            v = _subst(v, args)
            if cell is not None and isinstance(v, str):
                v = v.replace('{cell}', str(cell))
            return v

        files: List[str] = []
        inline: Dict[str, Any] = {}
        for p in raw.get('parameters', []) or []:
            if isinstance(p, str):
                path = (self.config_dir / s(p)).resolve()
                if not path.is_file():
                    raise ConfigError(f'graph {self.name!r}, node {raw["name"]!r}: parameter file '
                                      f'{path} does not exist')
                files.append(str(path))
            elif isinstance(p, dict):
                inline.update({k: _typed(s(v)) for k, v in p.items()})
            else:
                raise ConfigError(f'node {raw["name"]!r}: parameters entries are file names or maps')
        remaps = [(s(a), s(b)) for a, b in (raw.get('remappings') or {}).items()]
        file_params: Dict[str, str] = {}
        file_paths: Dict[str, str] = {}
        for pname, rel in (raw.get('file_parameters') or {}).items():
            path = (self.config_dir / str(s(rel))).resolve()
            if not path.is_file():
                raise ConfigError(f'graph {self.name!r}, node {raw["name"]!r}: file parameter '
                                  f'{pname!r}: {path} does not exist')
            try:
                file_params[pname] = str(_subst(path.read_text(), args))
            except ConfigError as exc:
                raise ConfigError(f'graph {self.name!r}, node {raw["name"]!r}: file parameter '
                                  f'{pname!r} ({path}): {exc}') from None
            file_paths[pname] = str(path)
        return NodeSpec(
            name=s(raw['name']), package=raw['package'], executable=raw['executable'],
            namespace=s(raw.get('namespace', '') or ''), parameter_files=files, parameters=inline,
            remappings=remaps, required=bool(_truthy(s(raw.get('required', True)))),
            env={k: str(s(v)) for k, v in (raw.get('env') or {}).items()},
            arguments=[str(s(a)) for a in raw.get('arguments', []) or []],
            description=raw.get('description', ''),
            file_parameters=file_params, file_parameter_paths=file_paths)


def _condition(v: Any) -> bool:
    """A substituted node condition: 'a == b', 'a != b' (string comparison), a truthy value, or
    several of these joined by ' and '."""
    if isinstance(v, str) and ' and ' in v:
        return all(_condition(part) for part in v.split(' and '))
    if isinstance(v, str):
        for op in ('==', '!='):
            if op in v:
                left, _, right = v.partition(op)
                return (left.strip() == right.strip()) == (op == '==')
    return _truthy(v)


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ('1', 'true', 'yes', 'on')
    return bool(v)


def _typed(v: Any) -> Any:
    """A fully substituted string like 'true' or '3' becomes its YAML value."""
    if isinstance(v, str) and _ARG_RE.search(v) is None:
        try:
            parsed = yaml.safe_load(v)
        except yaml.YAMLError:
            return v
        if isinstance(parsed, (bool, int, float)):
            return parsed
    return v


def _subst(v: Any, args: Mapping[str, Any]) -> Any:
    if not isinstance(v, str):
        return v
    full = _ARG_RE.fullmatch(v.strip())
    if full:
        key = full.group(1)
        if key not in args:
            raise ConfigError(f'unknown graph argument $({key})')
        return args[key]

    def rep(m):
        if m.group(1) not in args:
            raise ConfigError(f'unknown graph argument $({m.group(1)})')
        return _text(args[m.group(1)])
    return _ARG_RE.sub(rep, v)


def load_graph(path: Union[str, Path]) -> Graph:
    """Load and validate a graph description; unknown keys are errors."""
    p = Path(path).resolve()
    if not p.is_file():
        raise ConfigError(f'graph file not found: {p}')
    data = yaml.safe_load(p.read_text()) or {}
    for key in data:
        if key not in ('name', 'description', 'arguments', 'nodes'):
            raise ConfigError(f'{p}: unknown top-level key {key!r}')
    args = {}
    for name, spec in (data.get('arguments') or {}).items():
        spec = spec or {}
        bad = set(spec) - _ARG_KEYS
        if bad:
            raise ConfigError(f'{p}: argument {name!r} has unknown keys {sorted(bad)}')
        if spec.get('type', 'str') not in _TYPES:
            raise ConfigError(f'{p}: argument {name!r} type must be one of {sorted(_TYPES)}')
        args[name] = GraphArgument(name=name, default=spec.get('default'), type=spec.get('type', 'str'),
                                   help=spec.get('help', ''), choices=spec.get('choices'))
    nodes = data.get('nodes') or []
    for n in nodes:
        bad = set(n) - _NODE_KEYS
        if bad:
            raise ConfigError(f'{p}: node {n.get("name")!r} has unknown keys {sorted(bad)}')
        for req in ('name', 'package', 'executable'):
            if req not in n:
                raise ConfigError(f'{p}: a node lacks {req!r}')
    config_dir = p.parent.parent if p.parent.name == 'graphs' else p.parent
    return Graph(name=data.get('name', p.stem), description=data.get('description', ''),
                 arguments=args, nodes=nodes, config_dir=config_dir, path=p)


def find_graph(name_or_path: str, config_dir: Optional[Path] = None) -> Path:
    """A graph name ('sim') or a path to a graph file -> the file path."""
    p = Path(name_or_path)
    if p.suffix in ('.yaml', '.yml') and p.is_file():
        return p
    root = config_dir or default_config_dir()
    cand = root / 'graphs' / f'{name_or_path}.yaml'
    if cand.is_file():
        return cand
    known = sorted(x.stem for x in (root / 'graphs').glob('*.yaml'))
    raise ConfigError(f'no graph {name_or_path!r}; known graphs in {root / "graphs"}: {known}')


def default_config_dir() -> Path:
    """The repository's config/ (source checkout) or chef_bringup's installed share/config."""
    import os
    env = os.environ.get('CHEF_CONFIG_DIR')
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / 'config' / 'graphs').is_dir() and (parent / 'src').is_dir():
            return parent / 'config'
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('chef_bringup')) / 'config'
    except Exception:  # noqa: BLE001
        pass
    return Path.cwd() / 'config'
