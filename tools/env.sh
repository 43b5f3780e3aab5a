# Source me: the venv, the collection from this checkout, the lab inventory, and every
# Ansible/Molecule state directory kept out of the user's home.
EW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export EW_LAB_DIR=${EW_LAB_DIR:-/var/tmp/edgewarden-lab}
EW_VENV=${EW_VENV:-/var/tmp/edgewarden-venv}
# shellcheck source=/dev/null
. "$EW_VENV/bin/activate"
# the checkout is the collection root: expose it as ansible_collections/edgewarden/hardening,
# one link per checkout (two checkouts sharing a lab dir must not run each other's code)
EW_COLLECTIONS=$EW_LAB_DIR/collections/$(printf %s "$EW_ROOT" | cksum | cut -d' ' -f1)
mkdir -p "$EW_COLLECTIONS/ansible_collections/edgewarden"
ln -sfn "$EW_ROOT" "$EW_COLLECTIONS/ansible_collections/edgewarden/hardening"
export ANSIBLE_COLLECTIONS_PATH=$EW_COLLECTIONS
export ANSIBLE_INVENTORY=$EW_LAB_DIR/inventory.yml
export ANSIBLE_PIPELINING=True
export ANSIBLE_HOST_KEY_CHECKING=True
export ANSIBLE_LOCAL_TEMP=$EW_LAB_DIR/ansible-tmp
export ANSIBLE_HOME=$EW_LAB_DIR/ansible-home
# per lab: every lab uses the same device addresses, and a shared ControlPath would let a
# connection to one lab's device carry commands meant for another's
export ANSIBLE_SSH_CONTROL_PATH_DIR=$EW_LAB_DIR/cp
export ANSIBLE_FORCE_COLOR=0
export ANSIBLE_NOCOLOR=1
export ANSIBLE_FORKS=${ANSIBLE_FORKS:-10}
export EW_REPORT_DIR=${EW_REPORT_DIR:-$EW_LAB_DIR/reports}
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml
