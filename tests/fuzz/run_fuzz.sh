#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# SECONDS on its corpus in tests/fuzz/corpus/TARGET (the seeds and every
# input that once crashed, which therefore run first, as regression tests).
# New interesting inputs go to BUILD/fuzz/corpus/TARGET, not into the
# repository; a crash leaves its input in BUILD/fuzz/ and fails.
#
#   run_fuzz.sh SOURCE_DIR BUILD_DIR [SECONDS]
# Exit 77 (skip) without clang++ and libFuzzer (Debian: clang
# libclang-rt-14-dev).
set -euo pipefail
src=${1:?usage: run_fuzz.sh SOURCE_DIR BUILD_DIR [SECONDS]}
build=${2:?usage: run_fuzz.sh SOURCE_DIR BUILD_DIR [SECONDS]}
seconds=${3:-20}
out=$build/fuzz
mkdir -p "$out"

command -v clang++ >/dev/null || {
  echo "fuzz skipped: clang++ is missing (Debian: clang libclang-rt-14-dev)"
  exit 77
}
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  >"$out/probe.cc"
clang++ -fsanitize=fuzzer "$out/probe.cc" -o "$out/probe" 2>"$out/probe.log" || {
  echo "fuzz skipped: clang++ cannot link libFuzzer (Debian: libclang-rt-14-dev): $(head -1 "$out/probe.log")"
  exit 77
}

# target: its sources (the code under test is pure C++: clang builds it).
declare -A sources=(
  [settings]="tests/fuzz/settings_fuzz.cc common/settings.cc common/quote.cc"
)
status=0
for target in "${!sources[@]}"; do
  files=()
  for f in ${sources[$target]}; do files+=("$src/$f"); done
  clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Wno-unknown-attributes -I"$src" \
    "${files[@]}" -o "$out/${target}_fuzz"
  mkdir -p "$out/corpus/$target"
  echo "fuzz: $target for ${seconds} s"
  (cd "$out" && "./${target}_fuzz" -max_total_time="$seconds" -timeout=5 \
     -print_final_stats=1 "corpus/$target" "$src/tests/fuzz/corpus/$target" \
     >"$out/$target.log" 2>&1) || {
    status=1
    echo "fuzz: $target FAILED; the crashing input is in $out:"
    tail -30 "$out/$target.log"
  }
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$out/$target.log" | sed "s/^/fuzz: $target /" || true
done
exit $status
