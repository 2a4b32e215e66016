#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The man pages, kept in step with the program.
#
#   man_test.sh options   every long and short option and every variable
#       `keepalive-supervise --help` prints is in keepalive-supervise(1), and
#       every option that page documents exists; every variable the option
#       model reads (common/settings.cc) is in libkeepalive(7) and in
#       keepalive-supervise(1); the exit statuses are documented
#       and every option `keepalive-agent --help` prints is in
#       keepalive-agent(8), and the other way round
#   man_test.sh render    the pages, as built (version filled in, gzipped),
#       render with man(1) and groff without a single warning
#
# Needs: KEEPALIVE_SUPERVISE, KEEPALIVE_MAN_DIR (the built pages),
# KEEPALIVE_SOURCE_DIR.
source "$(dirname "$0")/lib.sh"
bounded_self 60 "$@"

: "${KEEPALIVE_SUPERVISE:?}" "${KEEPALIVE_MAN_DIR:?}" "${KEEPALIVE_SOURCE_DIR:?}"
PAGE1=$KEEPALIVE_MAN_DIR/keepalive-supervise.1
PAGE7=$KEEPALIVE_MAN_DIR/libkeepalive.7
PAGE8=$KEEPALIVE_MAN_DIR/keepalive-agent.8
for page in "$PAGE1" "$PAGE7" "$PAGE8"; do
  [[ -f $page && -f $page.gz ]] || fail "$page(.gz) not built"
done

# The page's source with roff's escaped hyphens made plain.
plain() { sed 's/\\-/-/g' "$1"; }

case_options() {
  local help text options option variables variable missing=()
  help=$("$KEEPALIVE_SUPERVISE" --help)
  text=$(plain "$PAGE1")

  # Long options: every --name in the help; short ones: "  -x, --name".
  options=$(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sort -u)
  options+=$'\n'$(grep -o -- '^ *-[a-z],' <<<"$help" | tr -d ' ,')
  [[ $(wc -l <<<"$options") -ge 20 ]] || fail "too few options in --help: $options"
  for option in $options; do
    grep -q -- "$option\b" <<<"$text" || missing+=("$option")
  done
  (( ${#missing[@]} == 0 )) ||
    fail "keepalive-supervise(1) lacks options from --help: ${missing[*]}"
  note "all $(wc -l <<<"$options") options of --help are documented"

  # The other way: each option the OPTIONS section documents exists.
  local documented
  documented=$(plain "$PAGE1" |
    sed -n '/^\.SH OPTIONS/,/^\.SH /{/^\.TP/{n;p}}' |
    grep -o -- '--[a-z][a-z-]*' | sort -u)
  [[ -n $documented ]] || fail "no options found in the OPTIONS section"
  for option in $documented; do
    grep -q -- "$option\b" <<<"$help" || missing+=("$option")
  done
  (( ${#missing[@]} == 0 )) ||
    fail "keepalive-supervise(1) documents options --help does not know: ${missing[*]}"

  # Variables: those the help lists, and those the option model reads.
  local settings=$KEEPALIVE_SOURCE_DIR/common/settings.cc
  variables=$( {
    sed -n '/environment/,/^$/p' <<<"$help" | grep -o '\b[A-Z][A-Z_]\{5,\}\b'
    grep -o '^ *{"[A-Z_]*",' "$settings" | grep -o '[A-Z_]\+'
    grep -o 'return "[A-Z_]*";' "$settings" | grep -o '[A-Z_]\+'
    grep -o 'lookup_ctx, "[A-Z_]*"' "$settings" | grep -o '"[A-Z_]*"' | tr -d '"'
  } | sort -u)
  for variable in KEEPALIVE LIBKEEPALIVE_DEBUG TCP_KEEPIDLE KEEPIDLE; do
    grep -qx "$variable" <<<"$variables" ||
      fail "could not find $variable among the variables read: $variables"
  done
  for variable in $variables; do
    for page in "$PAGE1" "$PAGE7"; do
      # In a bold macro line, as a whole word.
      grep -Eq "^\.(B|BR|RB|BI) (.*[ (\"])?$variable([ ,.)\"]|$)" "$page" ||
        missing+=("$variable in $(basename "$page")")
    done
  done
  (( ${#missing[@]} == 0 )) || fail "variables not documented: ${missing[*]}"
  note "variables documented: $(tr '\n' ' ' <<<"$variables")"

  # Exit statuses.
  local section
  section=$(sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' "$PAGE1")
  for status in 2 125 126 127; do
    grep -q "^\.B $status$" <<<"$section" || fail "exit status $status is not documented"
    grep -q "\b$status\b" <<<"$help" || fail "--help does not mention exit status $status"
  done
  grep -q '128+' <<<"$section" || fail "128+N is not documented"
  case_agent_options
}

# keepalive-agent(8) against `keepalive-agent --help` and `profile --help`.
case_agent_options() {
  : "${KEEPALIVE_AGENT:?}"
  local help text option missing=()
  help=$("$KEEPALIVE_AGENT" --help; "$KEEPALIVE_AGENT" profile --help)
  text=$(plain "$PAGE8")
  for option in $(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sort -u) -v -h; do
    grep -q -- "$option\b" <<<"$text" || missing+=("$option")
  done
  (( ${#missing[@]} == 0 )) ||
    fail "keepalive-agent(8) lacks options from --help: ${missing[*]}"
  for option in $(sed -n '/^\.SH OPTIONS/,/^\.SH /{/^\.TP/{n;p}}' <<<"$text" |
                  grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -q -- "$option\b" <<<"$help" || missing+=("$option")
  done
  (( ${#missing[@]} == 0 )) ||
    fail "keepalive-agent(8) documents options --help does not know: ${missing[*]}"
  note "keepalive-agent(8) documents every option of its --help"
}

case_render() {
  local page out err
  command -v man >/dev/null || skip "man is missing (Debian package man-db)"
  command -v groff >/dev/null || skip "groff is missing (Debian package groff-base)"
  for page in "$PAGE1" "$PAGE7" "$PAGE8"; do
    ! grep -q '@[A-Z_]*@' "$page" || fail "$page has an unfilled @VARIABLE@"
    err=$(groff -man -ww -z -Tutf8 "$page" 2>&1) ||
      fail "groff failed on $page: $err"
    [[ -z $err ]] || fail "groff warns on $page:"$'\n'"$err"
    # As man(1) renders the installed, gzipped page.
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page.gz" 2>"$SCRATCH/err") ||
      fail "man -l failed on $page.gz: $(cat "$SCRATCH/err")"
    [[ ! -s $SCRATCH/err ]] || fail "man warns on $page.gz:"$'\n'"$(cat "$SCRATCH/err")"
    grep -q '^NAME' <<<"$out" || fail "$page.gz rendered without a NAME section"
    grep -q '^SEE ALSO' <<<"$out" || fail "$page.gz rendered without SEE ALSO"
    note "$(basename "$page"): $(wc -l <<<"$out") lines, no warnings"
  done
}

make_scratch
case ${1:-} in
  options) case_options ;;
  render) case_render ;;
  *) fail "usage: man_test.sh options|render" ;;
esac
echo "PASS: $1"
