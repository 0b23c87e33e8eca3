# bash completion for fcvm. Source it: . completions/fcvm.bash
_fcvm() {
  local cur prev words cword
  _init_completion 2>/dev/null || {
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
  }
  local commands="run ls inspect logs exec stop start restart pause unpause kill wait rm rename port snapshot clone volume events pull images rmi image system stats top cp attach serve"
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
    run) opts="--name -p --publish -e --env --env-file --entrypoint -w --workdir -u --user --hostname --read-only --init --ulimit -l --label -i --interactive -t --tty --mem --cpu --vmm --jailer --no-jailer --network --insecure-registry --authfile --guest-pull --stop-timeout --boot-timeout --timeout --wait-ready --keep-on-failure --map --map-size --save-snapshot --snapshot-then-stop -d --detach --detach-keys --restart --rm --keep --help" ;;
    clone) opts="--snapshot --name -l --label -p --publish --network --timeout --wait-ready --keep-on-failure -d --detach --rm --keep --help" ;;
    snapshot) opts="create ls inspect rm --json -q --quiet -f --force --filter --format --help" ;;
    volume) opts="sync --help" ;;
    system) opts="df prune --json -f --force --help" ;;
    pull) opts="--insecure-registry --authfile -q --quiet --help" ;;
    images) opts="--json -q --quiet -f --filter --format --help" ;;
    rmi) opts="-f --force --help" ;;
    image) opts="pull ls inspect rm --insecure-registry --authfile --json -q --quiet -f --force --filter --format --help" ;;
    events) opts="--json --since --until -f --filter --no-stream --help" ;;
    ls | ps) opts="-a --all --json -q --quiet -f --filter --format --help" ;;
    inspect | wait | rename | port | pause | unpause) opts="--help" ;;
    start) opts="-a --attach -i --interactive --detach-keys --all -f --filter --help" ;;
    attach) opts="--no-stdin --detach-keys --help" ;;
    serve) opts="--listen --allow-remote --token-file --rotate-token --help" ;;
    kill) opts="-s --signal --help" ;;
    stats) opts="--no-stream --json --help" ;;
    top | cp) opts="--help" ;;
    logs) opts="-f --follow --tail -t --timestamps --console --help" ;;
    exec) opts="-i --interactive -t --tty -e --env -w --workdir -u --user --vm --help" ;;
    stop | restart) opts="-t --time --help" ;;
    rm) opts="-f --force --help" ;;
  esac
  case $prev in
    --vmm) COMPREPLY=($(compgen -W "auto qemu firecracker" -- "$cur")); return ;;
    --network) COMPREPLY=($(compgen -W "rootless privileged" -- "$cur")); return ;;
    --restart) COMPREPLY=($(compgen -W "no on-failure always unless-stopped" -- "$cur")); return ;;
    --env-file | --authfile) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --snapshot) COMPREPLY=($(compgen -W "$(fcvm snapshot ls -q 2>/dev/null)" -- "$cur")); return ;;
    --map) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    -s | --signal)
      if [ "$cmd" = kill ]; then
        COMPREPLY=($(compgen -W "KILL TERM INT HUP QUIT USR1 USR2 STOP CONT" -- "$cur"))
        return
      fi ;;
    -f | --filter)
      if [ "$cmd" = events ]; then
        COMPREPLY=($(compgen -W "vm= event=" -- "$cur"))
        compopt -o nospace 2>/dev/null
        return
      elif [ "$cmd" = images ] || [ "$cmd" = image ]; then
        COMPREPLY=($(compgen -W "reference= id= dangling=" -- "$cur"))
        compopt -o nospace 2>/dev/null
        return
      elif [ "$cmd" = snapshot ]; then
        COMPREPLY=($(compgen -W "name= id= image= source=" -- "$cur"))
        compopt -o nospace 2>/dev/null
        return
      elif [ "$cmd" = ls ] || [ "$cmd" = ps ] || [ "$cmd" = start ]; then
        COMPREPLY=($(compgen -W "label= name= id= status= restart-policy=" -- "$cur"))
        compopt -o nospace 2>/dev/null
        return
      fi ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [ "$cmd" = snapshot ] && [ "$prev" = snapshot ]; then
    COMPREPLY=($(compgen -W "create ls inspect rm" -- "$cur"))
  elif [ "$cmd" = snapshot ] && { [ "$prev" = inspect ] || [ "$prev" = rm ]; }; then
    COMPREPLY=($(compgen -W "$(fcvm snapshot ls -q 2>/dev/null)" -- "$cur"))
  elif [ "$cmd" = image ] && [ "$prev" = image ]; then
    COMPREPLY=($(compgen -W "pull ls inspect rm" -- "$cur"))
  elif [ "$cmd" = rmi ] || { [ "$cmd" = image ] && { [ "$prev" = inspect ] || [ "$prev" = rm ]; }; }; then
    COMPREPLY=($(compgen -W "$(fcvm images -q 2>/dev/null)" -- "$cur"))
  elif [ "$cmd" = pull ]; then
    COMPREPLY=($(compgen -f -P oci-archive: -- "${cur#oci-archive:}"))
  elif [ "$cmd" = system ] && [ "$prev" = system ]; then
    COMPREPLY=($(compgen -W "df prune" -- "$cur"))
  elif [ "$cmd" = volume ] && [ "$prev" = volume ]; then
    COMPREPLY=($(compgen -W "sync" -- "$cur"))
  elif [ "$cmd" = run ]; then
    COMPREPLY=($(compgen -f -P oci-archive: -- "${cur#oci-archive:}"))
  else
    COMPREPLY=($(compgen -W "$(fcvm __names 2>/dev/null)" -- "$cur"))
  fi
}
complete -F _fcvm fcvm
