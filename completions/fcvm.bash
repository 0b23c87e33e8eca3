# bash completion for fcvm. Source it: . completions/fcvm.bash
_fcvm() {
  local cur prev words cword
  _init_completion 2>/dev/null || {
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
  }
  local commands="run ls inspect logs exec stop start rm"
  local cmd="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      -*) ;;
      *) cmd=${COMP_WORDS[i]}; break ;;
    esac
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "$commands --help --version --log-level" -- "$cur"))
    return
  fi
  local opts
  case $cmd in
    run) opts="--name -p --publish -e --env --env-file --entrypoint -w --workdir --mem --cpu --vmm --network --insecure-registry --stop-timeout -d --detach --rm --keep --help" ;;
    ls | ps) opts="-a --all --json -q --quiet --help" ;;
    inspect | start) opts="--help" ;;
    logs) opts="-f --follow --tail -t --timestamps --console --help" ;;
    exec) opts="-i --interactive -t --tty -e --env -w --workdir -u --user --vm --help" ;;
    stop) opts="-t --time --help" ;;
    rm) opts="-f --force --help" ;;
  esac
  case $prev in
    --vmm) COMPREPLY=($(compgen -W "auto qemu firecracker" -- "$cur")); return ;;
    --network) COMPREPLY=($(compgen -W "rootless privileged" -- "$cur")); return ;;
    --env-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [ "$cmd" = run ]; then
    COMPREPLY=($(compgen -f -P oci-archive: -- "${cur#oci-archive:}"))
  else
    COMPREPLY=($(compgen -W "$(fcvm __names 2>/dev/null)" -- "$cur"))
  fi
}
complete -F _fcvm fcvm
