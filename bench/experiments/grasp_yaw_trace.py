"""Experiment: where a policy's grasps fail. Rolls a checkpoint out on validation scenes of one
triplet (ROS-free, the cells' safety filter, deterministic) and prints, at every gripper switch, the
fingers, the grasp sensor, red's height and distance to the pinch, and the yaw error a noise-free
scripted expert would correct (chef_sim.expert.ScriptedStacker._align_yaw, first grasp attempt).
python bench/experiments/grasp_yaw_trace.py CKPT TRIPLET_INDEX EPISODES
(bench/results/experiments/README.md, "Gripper-frame axes")."""
import sys

import numpy as np
import torch


def main():
    torch.set_num_threads(1)
    from chef_contract.spec import INTENTIONS
    from chef_loop.sim_eval import PolicySpec, build_policy, episode_seed, run_episode
    from chef_policy.runner import PolicyRunner
    from chef_policy.schedule import IntentionSchedule
    from chef_sim.env import RgbStackingEnv, SimConfig
    from chef_sim.expert import ScriptedStacker
    ckpt, trip_i, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    env = RgbStackingEnv(SimConfig(render_images=False, preset='fast'))
    policy = build_policy(PolicySpec('checkpoint', path=ckpt))
    log, act = [], policy.act

    def traced(obs, frame, intention, deterministic):
        a = act(obs, frame, intention, deterministic)
        red, pinch = np.asarray(frame['rgb30_red/abs_pose']), np.asarray(frame['sawyer/pinch/pose'])
        wrist = float(np.asarray(frame['sawyer/joints/angle']).reshape(-1)[6])
        log.append(dict(g=float(a[4]), finger=float(np.ravel(frame['gripper/joints/angle'])[0]),
                        grasp=float(np.ravel(frame['gripper/grasp'])[0]), dz=float(red[2] - pinch[2]),
                        dxy=float(np.linalg.norm(red[:2] - pinch[:2])),
                        yaw=float(ScriptedStacker()._align_yaw(red[3:7], pinch[3:7], wrist))))
        return a
    policy.act = traced
    runner = PolicyRunner(policy, schedule=IntentionSchedule(fixed=INTENTIONS.index('staged')), deterministic=True)
    for e in range(n):
        log.clear()
        r = run_episode(env, runner, episode_seed(500000, trip_i - 1, e), f'rgb_test_triplet{trip_i}')
        g = np.array([x['g'] for x in log])
        switches = (np.where(np.sign(g[1:]) != np.sign(g[:-1]))[0] + 1).tolist()
        print(f'episode {e}: success {r.success}, gripper switches at ticks {switches}')
        for t in switches:
            x = log[t]
            print(f'  t{t:3d} gripper {x["g"]:+.0f} fingers {x["finger"]:5.1f} grasp {x["grasp"]:.0f} '
                  f'red-pinch dz {x["dz"]:+.3f} dxy {x["dxy"]:.3f} yaw error {x["yaw"]:+.2f} rad')
    env.close()


if __name__ == '__main__':
    main()
