#!/usr/bin/env bash
# The bash completion offers commands, options and VM names.
source "$(dirname "$0")/../lib/common.sh"
export FCVM_DATA_DIR=$TEST_TMP/data
bin_dir=$TEST_TMP/bin
mkdir -p "$bin_dir"
ln -s "$FCVM_BIN" "$bin_dir/fcvm"
export PATH=$bin_dir:$PATH
source "$FCVM_SOURCE_DIR/completions/fcvm.bash"
complete_line() { # WORDS...
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _fcvm
  echo "${COMPREPLY[*]}"
}
[[ " $(complete_line fcvm '') " == *" exec "* ]] || fail "commands: $(complete_line fcvm '')"
[[ " $(complete_line fcvm logs --f) " == *" --follow "* ]] || fail "logs options"
[[ " $(complete_line fcvm run --vmm '') " == *" firecracker "* ]] || fail "--vmm values"
[[ " $(complete_line fcvm '') " == *" events "* ]] || fail "events command"
[[ " $(complete_line fcvm events --n) " == *" --no-stream "* ]] || fail "events options"
[[ " $(complete_line fcvm '') " == *" images "* ]] || fail "images command"
[[ " $(complete_line fcvm run --gu) " == *" --guest-pull "* ]] || fail "run --guest-pull"
[[ " $(complete_line fcvm image '') " == *" inspect "* ]] || fail "image subcommands"
# Every command of `fcvm --help` is offered by both completions.
zsh_file=$FCVM_SOURCE_DIR/completions/_fcvm
for c in $("$FCVM_BIN" --help | sed -n '/^Subcommands:/,$p' | awk 'NR > 1 && /^  [a-z]/ {sub(",", "", $1); print $1}'); do
  [[ " $(complete_line fcvm '') " == *" $c "* ]] || fail "bash completion lacks the command $c"
  grep -q "^    '$c:" "$zsh_file" || fail "zsh completion lacks the command $c"
  # ... and every long option of its --help.
  offered=" $(complete_line fcvm "$c" --) "
  for o in $("$FCVM_BIN" "$c" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+'); do
    [[ "$offered" == *" $o "* ]] || fail "bash completion of $c lacks $o"
    grep -qF -- "'$o[" "$zsh_file" || grep -qF -- "$o[" "$zsh_file" || fail "zsh completion lacks $o ($c)"
  done
done
[[ " $(complete_line fcvm kill -s '') " == *" TERM "* ]] || fail "kill -s values"
# VM names come from the store.
sqlite_ok=$("$FCVM_BIN" ls -a -q; echo ok)
[ "${sqlite_ok##*$'\n'}" = ok ] || [ "$sqlite_ok" = ok ] || fail "ls"
[ -z "$(complete_line fcvm stop '')" ] || fail "names offered with no VMs"
need_cmd sqlite3
sqlite3 "$FCVM_DATA_DIR/state.db" "INSERT INTO vms (id, name, image, status, vcpus, mem_mib, options_json, dir, created_ms) VALUES ('0123456789abcdef0123456789abcdef', 'web1', 'x', 'exited', 1, 128, '{}', '$FCVM_DATA_DIR/vms/x', 0)"
[ "$(complete_line fcvm stop w)" = web1 ] || fail "VM names: '$(complete_line fcvm stop w)'"
head -1 "$zsh_file" | grep -q '^#compdef fcvm' || fail "zsh completion header"
if command -v zsh >/dev/null; then zsh -n "$zsh_file" || fail "zsh syntax"; fi
echo "completions: ok"
