#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The license: LICENSE is the Apache License 2.0, the Debian copyright file
# says so, and every source, build and script file the repository tracks
# carries the SPDX identifier.
#
# Needs: KEEPALIVE_SOURCE_DIR (a git checkout; skips otherwise).
source "$(dirname "$0")/lib.sh"
bounded_self 60 "$@"

: "${KEEPALIVE_SOURCE_DIR:?}"
cd "$KEEPALIVE_SOURCE_DIR"
grep -q 'Apache License' LICENSE && grep -q 'Version 2.0, January 2004' LICENSE ||
  fail "LICENSE is not the Apache License 2.0"
grep -q '^License: Apache-2.0$' packaging/deb/copyright ||
  fail "packaging/deb/copyright does not name Apache-2.0"
command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1 ||
  skip "not a git checkout: cannot list the tracked files"
missing=()
while IFS= read -r file; do
  grep -q 'SPDX-License-Identifier: Apache-2.0' "$file" || missing+=("$file")
done < <(git ls-files | grep -E '\.(cc|h|c|sh|py|cmake|yaml|service|socket|conf|map|[178])$|CMakeLists\.txt$|^\.ci/run$|Dockerfile$')
(( ${#missing[@]} == 0 )) || fail "files without an SPDX identifier: ${missing[*]}"
note "LICENSE, copyright and SPDX identifiers agree"
echo "PASS"
