#!/usr/bin/env bash
# The manual pages the build writes from the command definitions: one per command --help lists,
# each naming every option that command's --help shows, valid roff (groff -ww warns on nothing);
# and scripts/install.sh puts binary, agent, completions and pages under a prefix.
source "$(dirname "$0")/../lib/common.sh"
man_dir=${FCVM_BUILD_DIR:?}/man
[ -f "$man_dir/fcvm.1" ] || fail "the build wrote no manual pages in $man_dir"
commands=$("$FCVM_BIN" --help | sed -n '/^Subcommands:/,$p' | awk 'NR > 1 && /^  [a-z]/ {sub(",", "", $1); print $1}')
[ -n "$commands" ] || fail "no commands in fcvm --help"
for c in $commands; do
  page=$man_dir/fcvm-$c.1
  [ -f "$page" ] || fail "no manual page for $c"
  grep -q "fcvm\\\\-$c" "$man_dir/fcvm.1" || fail "fcvm.1 does not list $c"
  # Every long option of the command's --help is in its page (roff escapes '-' as '\-').
  for opt in $("$FCVM_BIN" "$c" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    grep -qF -- "$(sed 's/-/\\-/g' <<<"$opt")" "$page" || fail "fcvm-$c.1 lacks $opt"
  done
  if command -v groff >/dev/null; then
    warnings=$(groff -man -ww -z "$page" 2>&1)
    [ -z "$warnings" ] || fail "groff warns on fcvm-$c.1: $warnings"
  fi
done
grep -q '^\.SH COMMANDS' "$man_dir/fcvm-snapshot.1" && grep -q 'fcvm snapshot create' "$man_dir/fcvm-snapshot.1" ||
  fail "nested commands are not in fcvm-snapshot.1"

prefix=$TEST_TMP/prefix
"$FCVM_SOURCE_DIR/scripts/install.sh" "$FCVM_BUILD_DIR" "$prefix" >/dev/null || fail "install.sh"
for f in bin/fcvm bin/containerd-shim-fcvm-v2 lib/fcvm/fc-agent share/bash-completion/completions/fcvm \
  share/zsh/site-functions/_fcvm share/man/man1/fcvm.1 share/man/man1/fcvm-run.1; do
  [ -e "$prefix/$f" ] || fail "install.sh did not install $f"
done
[ "$("$prefix/bin/fcvm" --version)" = "$("$FCVM_BIN" --version)" ] || fail "installed fcvm differs"
grep -qx "ExecStart=$prefix/bin/fcvm start --all --filter restart-policy=always" \
  "$prefix/lib/systemd/system/fcvm-restart.service" || fail "fcvm-restart.service: $(cat "$prefix/lib/systemd/system/fcvm-restart.service")"
grep -qx "ExecStart=$prefix/bin/fcvm serve" "$prefix/lib/systemd/system/fcvm-api.service" ||
  fail "fcvm-api.service: $(cat "$prefix/lib/systemd/system/fcvm-api.service")"
if command -v systemd-analyze >/dev/null; then
  for unit in fcvm-restart.service fcvm-api.socket fcvm-api.service; do
    MANPATH=$prefix/share/man systemd-analyze verify "$prefix/lib/systemd/system/$unit" >"$TEST_TMP/verify" 2>&1 ||
      fail "systemd-analyze verify $unit: $(cat "$TEST_TMP/verify")"
  done
fi
if command -v man >/dev/null; then
  # (Into a file: `grep -q` would leave the pipe early, and man die of SIGPIPE.)
  MANPATH=$prefix/share/man man -P cat fcvm-run >"$TEST_TMP/man.txt" 2>/dev/null || true
  grep -q -- '--publish' "$TEST_TMP/man.txt" && grep -q -- '--no-jailer' "$TEST_TMP/man.txt" ||
    fail "man fcvm-run does not render --publish and --no-jailer"
fi
echo "man: ok"
