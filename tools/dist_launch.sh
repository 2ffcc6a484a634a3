# Sourced by dist_train.sh and dist_test.sh: `dist_launch NPROC SCRIPT
# ARGS...` runs tools/SCRIPT ARGS... in NPROC processes per node through
# torch.distributed.run (exec: its exit status is the script's).
#   NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PYTHON (python):
#   as set in the environment, else these defaults; PORT: see dist_port.sh.
TOOLS_DIR="$(dirname "${BASH_SOURCE[0]}")"
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
# PORT: as set, else a free one (one node) or 29500 (several nodes)
source "$TOOLS_DIR/dist_port.sh"

dist_launch() {  # dist_launch NPROC SCRIPT ARGS...
    local nproc=$1 script=$2
    shift 2
    PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes=$NNODES \
        --node_rank=$NODE_RANK \
        --master_addr=$MASTER_ADDR \
        --nproc_per_node=$nproc \
        --master_port=$PORT \
        "$TOOLS_DIR/$script" "$@"
}
