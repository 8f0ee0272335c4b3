#!/bin/sh
# `redis-server ...` gets `--protected-mode no` (as in the official image); any other command runs as is.
set -e
if [ "${1:-}" = redis-server ]; then
    shift
    exec redis-server "$@" --protected-mode no
fi
exec "$@"
