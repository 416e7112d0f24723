#!/usr/bin/env bash
# Regenerate leaderboards/ from a full run of the built-in bank with every registered method,
# and `tdabench mislabel` on its label-noise benchmark.
#
#   scripts/make_leaderboards.sh                 # run the bank (resumes: finished cells are reused), then the pages
#   scripts/make_leaderboards.sh --pages         # only the pages, from the results directory
#   scripts/make_leaderboards.sh --check         # check that leaderboards/ matches the results (apart from the date)
#   scripts/make_leaderboards.sh --export F.tar.xz   # pack the results into one archive (+ F.tar.xz.sha256) to publish
#
# Results live outside the code's history: in $RESULTS (default results/bank, which git ignores),
# or in a published archive given as RESULTS=archive.tar.xz for --pages and --check. Only the
# pages and the aggregated table are committed under leaderboards/. Methods whose fit is
# stochastic run under 3 seeds. Other arguments go to `tdabench run` (e.g. --device cuda, --jobs 2).
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS=${RESULTS:-results/bank}
MODE=all
case "${1:-}" in --pages | --check | --export) MODE=$1; shift ;; esac

case "$MODE" in
  all)
    # Every registered method (no --method), every split, every trajectory the bank records.
    tdabench run --benchmark builtin --trajectory all --seeds 3 --out "$RESULTS" --no-progress "$@" || status=$?
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
  --export)
    tdabench leaderboard --results "$RESULTS" --export "${1:?give the name of the archive, e.g. results-bank-v2.tar.xz}"
    ;;
esac
