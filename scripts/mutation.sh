#!/usr/bin/env bash
# Mutation testing of prunekit's core math with mutmut (slow: not part of ./test.sh or CI).
#
#   scripts/mutation.sh [module ...]     modules: methods allocation structural calibration
#                                        (default: methods); JOBS=2 workers, LIMIT=900 s per module,
#                                        ONLY="glob…" to run just those mutants (e.g. 'prunekit.methods.oneshot*'),
#                                        TIMEOUT_CONSTANT=10 s added to mutmut's per-mutant time estimate,
#                                        TESTS="tests/…" instead of the module's test selection (with
#                                        ONLY: structural/'s full selection needs ~9 min of stats alone)
#
# Each module is mutated in its own scratch copy ($MUTATION_DIR/<module>, default
# /tmp/prunekit-mutation), against only the fast tests that exercise it; mutmut runs just the tests
# that reach each mutated function. Survivors are written to $MUTATION_DIR/<module>/survivors.txt;
# `cd $MUTATION_DIR/<module> && mutmut show <name>` prints one as a diff.
# On a shared machine run it niced and serialised with other heavy jobs, e.g.
#   flock /tmp/prunekit-bench.lock nice -n 19 scripts/mutation.sh methods
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MUTMUT="$ROOT/.venv/bin/mutmut"
[ -x "$MUTMUT" ] || { echo "mutmut is missing: .venv/bin/python -m pip install -e '.[mutation]'" >&2; exit 2; }

tests_for() {
  case "$1" in
    methods) echo "tests/methods" ;;
    # allocation: the fast files and the mutant-killing files (MUTATION.md §5, §8), plus the two fast tests of the cached dense reference (without
    # them its mutants in neuroal_search survive) and check_allocation's messages; the rest of
    # test_neuroal_fast / test_allocation_api / the CLI take minutes per surviving mutant
    allocation) echo "tests/allocation/test_ramps.py tests/allocation/test_alignment.py tests/allocation/test_owl_reference.py tests/allocation/test_neuroal_argmin.py tests/allocation/test_allocation_math.py tests/allocation/test_neuroal_fast.py::test_cached_reference_objective_equals_dense_model_vs_masked_model_norms tests/allocation/test_neuroal_fast.py::test_cached_reference_runs_one_block_forward_per_candidate_block tests/allocation/test_allocation_api.py::test_bad_allocation_input_is_one_line_error $(ls tests/allocation/test_*_mutants.py tests/allocation/test_*_mutmut.py)" ;;
    structural) echo "tests/structural" ;;
    calibration) echo "tests/calibration" ;;
    *) echo "unknown module '$1'; choose from: methods allocation structural calibration" >&2; return 2 ;;
  esac
}

for module in "${@:-methods}"; do
  selection=${TESTS:-$(tests_for "$module")}  # TESTS="file…": a narrower (faster) selection
  work="${MUTATION_DIR:-/tmp/prunekit-mutation}/$module"
  rm -rf "$work" && mkdir -p "$work"
  cp -r src tests pyproject.toml "$work/"
  {
    echo "[mutmut]"
    echo "source_paths=src"
    echo "only_mutate=src/prunekit/$module/*"
    echo "pytest_add_cli_args_test_selection="
    for t in $selection; do echo "    $t"; done
    echo "pytest_add_cli_args=-x"
    echo "process_isolation=forkserver"  # torch is not fork-safe after the stats run
    # mutmut's CPU-time limit is (estimated test time + constant) × 15 × 2, and its estimate from
    # the stats run can be far too low (0.27 s for a NeuroAL test that takes ~17 CPU-s alone):
    # with the default constant (1) most neuroal.py mutants 'timed out'; 10 allows ≥ 300 CPU-s
    echo "timeout_constant=${TIMEOUT_CONSTANT:-10}"
  } >"$work/setup.cfg"
  echo "== $module: mutating src/prunekit/$module against $selection (scratch: $work)"
  status=0
  (cd "$work" && timeout "${LIMIT:-900}" "$MUTMUT" run --max-children "${JOBS:-2}" ${ONLY:-}) || status=$?
  [ "$status" = 124 ] && echo "!! $module: stopped after ${LIMIT:-900} s; the counts below are partial"
  (cd "$work" && "$MUTMUT" results --all true 2>/dev/null || "$MUTMUT" results) >"$work/results.txt" || true
  grep -E ": (survived|no tests)" "$work/results.txt" >"$work/survivors.txt" || true
  echo "== $module: $(grep -c ': killed' "$work/results.txt" || true) killed," \
    "$(wc -l <"$work/survivors.txt") survived or untested (list: $work/survivors.txt)"
done
