#!/usr/bin/env bash
# Kept for old instructions: the benchmark lives in deploy/bench/ now.
exec "$(dirname "${BASH_SOURCE[0]}")/bench/bench.sh" "$@"
