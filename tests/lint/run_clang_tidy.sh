#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# clang-tidy (19, Debian 12's clang-tidy-19) with the repository's
# .clang-tidy over the product's sources, common/, supervisor/, agent/ and
# preload/, and their headers. Fails on any finding.
#
#   tests/lint/run_clang_tidy.sh SOURCE_DIR BUILD_DIR
#
# BUILD_DIR is a configured and built tree (compile_commands.json, and the
# generated supervisor/filter_programs.inc that filter.cc includes). The
# tests are left out: gtest's ASSERTs are opaque to the checks that follow
# values (bugprone-unchecked-optional-access), and they would double the
# time. Runs `nproc` files at a time; RUN_CLANG_TIDY and CLANG_TIDY name
# other binaries.
set -euo pipefail

source_dir=$(cd "${1:?usage: run_clang_tidy.sh SOURCE_DIR BUILD_DIR}" && pwd)
build_dir=$(cd "${2:?usage: run_clang_tidy.sh SOURCE_DIR BUILD_DIR}" && pwd)
run_clang_tidy=${RUN_CLANG_TIDY:-run-clang-tidy-19}
clang_tidy=${CLANG_TIDY:-clang-tidy-19}

die() {
  echo "run_clang_tidy.sh: $*" >&2
  exit 1
}

if ! command -v "$run_clang_tidy" >/dev/null ||
  ! command -v "$clang_tidy" >/dev/null; then
  die "$clang_tidy not found (apt-get install clang-tidy-19; Debian 12's" \
    "clang-tidy 14 cannot parse libstdc++ 12's <expected>)"
fi
[[ -f $build_dir/compile_commands.json ]] ||
  die "no compile_commands.json in $build_dir (configure it with CMake first)"
[[ -f $build_dir/supervisor/filter_programs.inc ]] ||
  die "no supervisor/filter_programs.inc in $build_dir (build it first)"

# The paths in the compilation database are absolute; so are these.
ours="^$source_dir/(common|supervisor|agent|preload)/"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# -Wno-unknown-attributes: the build is GCC's, and clang does not know
# GCC's optimize("...") (common/quote.cc); GCC itself warns of an unknown
# attribute, as an error in CI.
"$run_clang_tidy" -clang-tidy-binary "$(command -v "$clang_tidy")" \
  -p "$build_dir" -j "$(nproc)" -quiet -header-filter="$ours" \
  -extra-arg=-Wno-unknown-attributes -warnings-as-errors='*' "$ours" \
  >"$log" 2>&1 || status=$?
# The findings, without the progress lines and the counts.
grep -vE '^$|^\[ *[0-9]+/[0-9]+\]|^Running clang-tidy|[0-9]+ (warning|error)s? (and [0-9]+ errors? )?generated|^Error while processing' \
  "$log" || true
# (grep finds nothing in a clean run: not a failure of the pipeline.)
findings=$({ grep -E '(warning|error): ' "$log" || true; } | sort -u | wc -l)
if ((status != 0 || findings != 0)); then
  echo "run_clang_tidy.sh: clang-tidy found $findings problem(s) (exit status $status)" >&2
  exit 1
fi
echo "run_clang_tidy.sh: clean ($(grep -c '^\[ *[0-9]*/' "$log" || true) files)"
