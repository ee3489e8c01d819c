"""Ensembles: K trained policies acting as one (ROS-free).

`EnsemblePolicy` averages its members' arm commands and takes their majority gripper command (ties
close). Members must read the same inputs: typically trainings of one learner that differ only in
their seed. On the learning bench's expert data ensembles of three trainings beat their members
(bench/results/experiments/README.md "Ensembles"; docs/policy.md "Ensembles").

A manifest `<name>.ensemble.json` ({"format": "chef_ensemble/1", "members": [{path, sha256}]}, paths
relative to the manifest) names the member checkpoints; `make_policy` and therefore the policy node's
`policy` parameter take it like a checkpoint path, and `checkpoint_sha256` then checks the manifest
(each member is checked against the sha256 the manifest holds).

    python -m chef_policy.ensemble OUT.ensemble.json CHECKPOINT CHECKPOINT [...]   # prints the sha256
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from chef_policy.runner import NetworkPolicy, PolicyError


class EnsemblePolicy:
    """K policies acting as one: the arm command is the members' mean, the gripper their majority
    (ties close); members that read different inputs are refused."""

    kind = 'ensemble'

    def __init__(self, members: Sequence[Any]):
        if len(members) < 2:
            raise PolicyError('an ensemble needs at least 2 members')
        first = members[0]
        for m in members[1:]:
            if (tuple(m.stack_keys), tuple(m.cameras), bool(m.needs_objects), m.n_intentions) != \
                    (tuple(first.stack_keys), tuple(first.cameras), bool(first.needs_objects), first.n_intentions):
                raise PolicyError(f'ensemble members read different inputs: {first.policy_id} vs {m.policy_id}')
        self.members = list(members)
        self.cameras, self.needs_objects = tuple(first.cameras), first.needs_objects
        self.stack_keys, self.n_intentions = tuple(first.stack_keys), first.n_intentions
        self.sha256 = ''
        self.policy_id = 'ensemble(' + ', '.join(m.policy_id for m in members) + ')'
        self.warmup_ms: Optional[float] = None

    def reset(self, seed: int) -> None:
        for m in self.members:
            m.reset(seed)

    def act(self, obs, frame, intention: int, deterministic: bool) -> np.ndarray:
        acts = np.stack([np.asarray(m.act(obs, frame, intention, deterministic), np.float32).reshape(5)
                         for m in self.members])
        out = acts.mean(0)
        out[4] = 1.0 if out[4] >= 0 else -1.0
        return out.astype(np.float32)

    def warmup(self, iterations: int) -> float:
        self.warmup_ms = sum(m.warmup(iterations) for m in self.members)
        return self.warmup_ms

    def info(self) -> Dict[str, Any]:
        """The fields of chef_contract.payloads.PolicyInfo (what the policy node publishes); the
        members' own infos go under config.members."""
        return {'policy_id': self.policy_id, 'kind': self.kind, 'checkpoint_sha256': self.sha256,
                'source': getattr(self, 'source', ''),
                'config': {'members': [m.info() for m in self.members if hasattr(m, 'info')]},
                'warmup_ms': self.warmup_ms or 0.0}


ENSEMBLE_SUFFIX = '.ensemble.json'
ENSEMBLE_FORMAT = 'chef_ensemble/1'


def write_ensemble(path, checkpoints: Sequence[Any]) -> str:
    """Write the manifest `path` (ending in ENSEMBLE_SUFFIX) of >= 2 member checkpoints, each with
    its sha256 (paths relative to the manifest's folder when inside it); returns the manifest's
    sha256 (what the policy node's checkpoint_sha256 checks)."""
    from chef_policy.checkpoint import file_sha256
    path = Path(path)
    if not path.name.endswith(ENSEMBLE_SUFFIX):
        raise PolicyError(f'{path}: an ensemble manifest is named *{ENSEMBLE_SUFFIX}')
    if len(checkpoints) < 2:
        raise PolicyError('an ensemble needs at least 2 members')
    members = []
    for c in checkpoints:
        c = Path(c).resolve()
        rel = os.path.relpath(c, path.parent.resolve())
        members.append({'path': rel if not rel.startswith('..') else str(c), 'sha256': file_sha256(c)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps({'format': ENSEMBLE_FORMAT, 'members': members}, indent=2) + '\n')
    os.replace(tmp, path)
    return file_sha256(path)


def load_ensemble(path, expected_sha256: Optional[str] = None) -> EnsemblePolicy:
    """An ensemble manifest -> EnsemblePolicy of its member checkpoints, each checked against the
    sha256 the manifest holds; PolicyError (one line) for a bad manifest."""
    from chef_policy.checkpoint import file_sha256
    path = Path(path)
    try:
        sha = file_sha256(path)
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PolicyError(f'ensemble {path}: {exc}') from None
    if expected_sha256 and sha != expected_sha256:
        raise PolicyError(f'ensemble {path}: sha256 {sha[:12]} is not the expected {expected_sha256[:12]}')
    if not isinstance(data, dict) or data.get('format') != ENSEMBLE_FORMAT:
        raise PolicyError(f'ensemble {path}: not a {ENSEMBLE_FORMAT} manifest')
    members = data.get('members')
    if not isinstance(members, list) or not all(isinstance(m, dict) and m.get('path') for m in members):
        raise PolicyError(f'ensemble {path}: members must be a list of {{path, sha256}}')
    policies = [NetworkPolicy.from_checkpoint(path.parent / m['path'], m.get('sha256') or None) for m in members]
    ens = EnsemblePolicy(policies)
    ens.sha256, ens.source = sha, str(path)
    ens.policy_id = f'{path.name[:-len(ENSEMBLE_SUFFIX)]}@{sha[:12]}'
    return ens


def main(argv=None) -> int:
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3:
        print(f'usage: python -m chef_policy.ensemble OUT{ENSEMBLE_SUFFIX} CHECKPOINT CHECKPOINT [...]',
              file=sys.stderr)
        return 2
    try:
        sha = write_ensemble(args[0], args[1:])
        load_ensemble(args[0], sha)                     # every member loads and reads the same inputs
    except Exception as exc:  # noqa: BLE001 - one line for the user
        print(f'{args[0]}: {exc}', file=sys.stderr)
        return 1
    print(sha)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
