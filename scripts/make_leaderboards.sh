#!/usr/bin/env bash
# Regenerate leaderboards/ from a full run of the built-in bank with every registered method,
# and `tdabench mislabel` on its label-noise benchmark.
#
#   scripts/make_leaderboards.sh            # run the bank (resumes: finished cells are reused), then the pages
#   scripts/make_leaderboards.sh --pages    # only the pages, from the committed leaderboards/results/
#   scripts/make_leaderboards.sh --check    # check that leaderboards/ matches leaderboards/results/ (apart from the date)
#
# The results are committed under leaderboards/results/ (JSON + predictions .npz) so that
# anyone can regenerate the pages byte-for-byte (apart from the "Generated on" line) without
# rerunning the bank. Other arguments go to `tdabench run` (e.g. --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS=leaderboards/results
MODE=all
case "${1:-}" in --pages | --check) MODE=$1; shift ;; esac

case "$MODE" in
  all)
    # Every registered method (no --method), every split, every metric the bank records.
    tdabench run --benchmark builtin --trajectory all --out "$RESULTS" --no-progress "$@" || status=$?
    # Exit status 1 means some cells failed: they are recorded and shown as failed, so go on.
    if [[ ${status:-0} -gt 1 ]]; then exit "$status"; fi
    # Mislabel identification on the bank's label-noise benchmark: every method that can rank.
    tdabench mislabel --out "$RESULTS" --no-progress || status=$?
    if [[ ${status:-0} -gt 1 ]]; then exit "$status"; fi
    tdabench leaderboard --results "$RESULTS" --benchmark builtin --out leaderboards
    ;;
  --pages)
    tdabench leaderboard --results "$RESULTS" --benchmark builtin --out leaderboards
    ;;
  --check)
    tdabench leaderboard --results "$RESULTS" --benchmark builtin --out leaderboards --check
    ;;
esac
