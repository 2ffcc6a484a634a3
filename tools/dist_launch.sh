# Sourced by dist_train.sh and dist_test.sh: `dist_launch NPROC SCRIPT
# ARGS...` runs tools/SCRIPT ARGS... in NPROC processes per node through
# torch.distributed.run (exec: its exit status is the script's).
#   NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1): as set in the
#   environment, else these defaults; PORT: see dist_port.sh. PYTHON: as
#   set, else the interpreter of the environment these tools belong to (the
#   one whose site-packages holds them, or a clone's .venv), else python3 /
#   python on PATH; the first that finds torch and occam_plugin.
TOOLS_DIR="$(dirname "${BASH_SOURCE[0]}")"
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
if [ -z "${PYTHON:-}" ]; then
    # <prefix>/lib/pythonX.Y/site-packages/occam_plugin/.mim/tools -> <prefix>/bin
    for candidate in "$TOOLS_DIR/../../../../../../bin/python" \
                     "$TOOLS_DIR/../.venv/bin/python" python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c \
            "import importlib.util as u, sys; sys.exit(not (u.find_spec('torch') and u.find_spec('occam_plugin')))" \
            >/dev/null 2>&1; then
            PYTHON=$candidate
            break
        fi
    done
    if [ -z "${PYTHON:-}" ]; then
        echo "error: no Python with torch and occam_plugin found (tried this environment's, python3, python); set PYTHON=/path/to/python" >&2
        exit 2
    fi
fi
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
