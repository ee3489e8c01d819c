# Source this to get the CHEF environment in a shell:  source scripts/env.sh
# (the ./chef wrapper does it for you). Safe to source more than once.
_chef_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$_chef_root/.venv/bin/activate"
# colcon's setup scripts read unset variables; relax nounset while sourcing
case $- in *u*) _chef_u=1; set +u ;; *) _chef_u=0 ;; esac
# shellcheck disable=SC1091
source "$_chef_root/install/setup.bash"
[ "$_chef_u" = 1 ] && set -u
# ROS wheels keep their ament index in the venv, which colcon's setup does not add.
case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *) export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$VIRTUAL_ENV" ;; esac
export CHEF_WS="$_chef_root"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
unset _chef_root _chef_u
