# Sourced by dist_train.sh and dist_test.sh: sets PORT, the rendezvous port.
#   PORT set: it must be free on this machine (node rank 0 listens on it),
#             else a clear error instead of torch's EADDRINUSE.
#   PORT not set, one node: a free port picked by the OS, so that two runs
#             on one machine do not collide.
#   PORT not set, several nodes: 29500 (every node must use the same port).
# Needs PYTHON, NNODES, NODE_RANK and MASTER_ADDR.
port_is_free() {  # port_is_free HOST PORT
    "$PYTHON" - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

if [ -n "${PORT:-}" ]; then
    if [ "$NODE_RANK" = 0 ] && ! port_is_free "$MASTER_ADDR" "$PORT"; then
        echo "error: PORT=$PORT on $MASTER_ADDR is in use (another" \
             "dist_train.sh / dist_test.sh or torchrun running?): set PORT" \
             "to a free port, or leave PORT unset on a single node to have" \
             "one picked." >&2
        exit 1
    fi
elif [ "$NNODES" = 1 ]; then
    PORT=$("$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("", 0))
print(s.getsockname()[1])
s.close()') || exit 1
    echo "$(basename "$0"): PORT not set; using free port $PORT" >&2
else
    PORT=29500
fi
