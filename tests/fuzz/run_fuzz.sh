#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# SECONDS on its corpus in tests/fuzz/corpus/TARGET (the seeds and every
# input that once crashed, which therefore run first, as regression tests).
# New interesting inputs go to BUILD/fuzz/corpus/TARGET, not into the
# repository; a crash leaves its input in BUILD/fuzz/ and fails. A target
# is rebuilt only when a source, a header or this script is newer.
#
#   run_fuzz.sh SOURCE_DIR BUILD_DIR [SECONDS]
# Exit 77 (skip) without a clang++ that builds C++23 (<expected>) and links
# libFuzzer: clang 19 (Debian: clang-19 libclang-rt-19-dev); Debian 12's
# default clang 14 cannot compile libstdc++ 12's <expected>.
set -euo pipefail
src=${1:?usage: run_fuzz.sh SOURCE_DIR BUILD_DIR [SECONDS]}
build=${2:?usage: run_fuzz.sh SOURCE_DIR BUILD_DIR [SECONDS]}
seconds=${3:-20}
out=$build/fuzz
mkdir -p "$out"

cat >"$out/probe.cc" <<'PROBE'
#include <expected>
std::expected<int, int> zero() { return 0; }
extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) {
  return *zero();
}
PROBE
cxx=
why=
for candidate in clang++-19 clang++; do
  command -v "$candidate" >/dev/null || continue
  if "$candidate" -std=c++23 -fsanitize=fuzzer "$out/probe.cc" \
       -o "$out/probe" 2>"$out/probe.log"; then
    cxx=$candidate
    break
  fi
  why+=" $candidate: $(grep -m1 -E 'error' "$out/probe.log" || head -1 "$out/probe.log");"
done
[[ -n $cxx ]] || {
  why=${why:- none is installed;}
  echo "fuzz skipped: no clang++ compiles C++23 <expected> and links" \
    "libFuzzer (Debian: clang-19 libclang-rt-19-dev):${why%;}"
  exit 77
}

# target: its sources. None needs a library besides the C and C++ ones
# (nlohmann-json, which the agent's parsers use, is headers only).
declare -A sources=(
  [settings]="tests/fuzz/settings_fuzz.cc common/settings.cc common/quote.cc"
  [command_line]="tests/fuzz/command_line_fuzz.cc supervisor/cli.cc
    supervisor/setting_flags.cc supervisor/strategy.cc supervisor/syscalls.cc
    common/settings.cc common/quote.cc"
  [option_words]="tests/fuzz/option_words_fuzz.cc supervisor/setting_flags.cc
    supervisor/cli.cc supervisor/strategy.cc supervisor/syscalls.cc
    common/settings.cc common/quote.cc"
  [container_state]="tests/fuzz/container_state_fuzz.cc
    agent/container_state.cc supervisor/error.cc common/quote.cc"
  [state_receiver]="tests/fuzz/state_receiver_fuzz.cc
    agent/container_state.cc supervisor/error.cc common/quote.cc"
)
# What a rebuild depends on besides a target's sources: the headers the
# sources include, the compiler and this script.
headers=$(find "$src/common" "$src/supervisor" "$src/agent" "$src/tests/fuzz" \
  "$src/tests/common" \
  -name '*.h')
status=0
for target in $(printf '%s\n' "${!sources[@]}" | sort); do
  files=()
  for f in ${sources[$target]}; do files+=("$src/$f"); done
  binary=$out/${target}_fuzz
  stamp="$cxx ${files[*]}"
  # shellcheck disable=SC2086 # $headers: one path per word
  if [[ ! -x $binary || $(cat "$binary.stamp" 2>/dev/null) != "$stamp" ]] ||
    [[ -n $(find "${files[@]}" $headers "${BASH_SOURCE[0]}" \
      "$(readlink -f "$(command -v "$cxx")")" -newer "$binary" -print -quit) ]]
  then
    echo "fuzz: building $target with $cxx"
    rm -f "$binary.stamp"
    "$cxx" -std=c++23 -g -O1 -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=undefined -Wno-unknown-attributes \
      -DKEEPALIVE_VERSION='"fuzz"' -I"$src" "${files[@]}" -o "$binary" || {
      status=1
      echo "fuzz: $target FAILED to build"
      continue
    }
    echo "$stamp" >"$binary.stamp"
  fi
  mkdir -p "$out/corpus/$target"
  echo "fuzz: $target for ${seconds} s"
  (cd "$out" && "./${target}_fuzz" -max_total_time="$seconds" -timeout=5 \
     -print_final_stats=1 "corpus/$target" "$src/tests/fuzz/corpus/$target" \
     >"$out/$target.log" 2>&1) || {
    status=1
    echo "fuzz: $target FAILED; the crashing input is in $out:"
    tail -30 "$out/$target.log"
  }
  grep -E '^(stat::(number_of_executed_units|peak_rss_mb)|Done [0-9]+ runs)' \
    "$out/$target.log" | sed "s/^/fuzz: $target /" || true
done
exit $status
