#!/usr/bin/env bash
# Multi-process training: tools/dist_train.sh CONFIG GPUS [train.py args...]
# Without CUDA the processes train on the CPU and talk over gloo.
CONFIG=$1
GPUS=$2
source "$(dirname "$0")/dist_launch.sh"
dist_launch "$GPUS" train.py "$CONFIG" --launcher pytorch "${@:3}"
