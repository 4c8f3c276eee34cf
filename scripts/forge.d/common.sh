# Shared helpers of the forge: logging, stage timing, cache keys, atomic
# outputs. Sourced by scripts/forge; every stage file uses only these.

# Functions called from `a || b` or `if` run without errexit in bash; stages
# therefore call other functions only as plain commands, and command
# substitutions inherit errexit.
shopt -s inherit_errexit

FORGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$FORGE_DIR/../.." && pwd)
# shellcheck source=pins.env
. "$FORGE_DIR/pins.env"

CACHE=${STATEPROOF_FORGE_CACHE:-/var/cache/stateproof/forge}
LOGS=$CACHE/logs
OUT=$CACHE/out
BIN=$CACHE/bin
KEY_LABEL=org.stateproof.forge.key
SOURCES_LABEL=org.stateproof.forge.sources
mkdir -p "$LOGS" "$OUT" "$BIN" "$CACHE/stamps"

export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOPATH=$CACHE/go/path
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export PATH=$BIN:/usr/local/go/bin:$PATH

CURRENT_STAGE=""
declare -a STAGE_TIMES=()

say() { printf '[forge %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  say "FAILED${CURRENT_STAGE:+ in stage '$CURRENT_STAGE'}: $*"
  exit 1
}

# Runs "$@" with its output in the stage's log, printing a heartbeat while it
# runs, so that a long Go build is never silent. On failure the log's tail is
# shown and the stage fails.
run_logged() {
  local what=$1
  shift
  local log=$LOGS/${CURRENT_STAGE:-forge}.log start=$SECONDS pid next
  say "$what"
  "$@" >>"$log" 2>&1 &
  pid=$!
  next=$((start + 30))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      say "  ... $what: $((SECONDS - start))s so far (log: $log)"
      next=$((next + 30))
    fi
  done
  if ! wait "$pid"; then
    tail -n 30 "$log" >&2
    die "$what (full log: $log)"
  fi
}

# A stage's cache key: the hash of what it names. An absolute path is a
# recipe file or folder and is hashed by content (and must exist); anything
# else (a pinned version, a package list) is hashed as text.
cache_key() {
  local input
  for input in "$@"; do
    case "$input" in
      /*) [ -e "$input" ] || die "cache key input $input does not exist" ;;
    esac
  done
  {
    for input in "$@"; do
      case "$input" in
        /*) if [ -d "$input" ]; then
          (cd "$input" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
        else
          sha256sum <"$input"
        fi ;;
        *) printf '%s\n' "$input" ;;
      esac
    done
  } | sha256sum | cut -c1-16
}

stamp_matches() { [ "$(cat "$CACHE/stamps/$1" 2>/dev/null)" = "$2" ]; }
write_stamp() { printf '%s' "$2" >"$CACHE/stamps/$1"; }

image_key() { docker image inspect -f "{{index .Config.Labels \"$KEY_LABEL\"}}" "$1" 2>/dev/null; }
image_is_current() { [ "$(image_key "$1")" = "$2" ]; }

# Builds a Dockerfile context under a scratch tag and moves the final tag only
# once the build succeeded, so a failed build never leaves a half image behind.
# Arguments after the fourth go to docker build (--build-arg NAME=VALUE).
build_image() {
  local tag=$1 context=$2 key=$3 sources=$4 scratch
  shift 4
  scratch="stateproof-forge-scratch/$(printf '%s' "$tag" | tr -c 'a-z0-9\n' '-'):$key"
  run_logged "building image $tag" env DOCKER_BUILDKIT=0 docker build -q "$@" \
    --label "$KEY_LABEL=$key" --label "$SOURCES_LABEL=$sources" -t "$scratch" "$context"
  docker tag "$scratch" "$tag"
  docker rmi "$scratch" >/dev/null
}

# Tags every name in "$@" (after the first) as the first, atomically per name.
alias_image() {
  local source=$1
  shift
  local name
  for name in "$@"; do docker tag "$source" "$name"; done
}

# Installs a finished file tree into place in one rename.
publish_dir() {
  local built=$1 final=$2
  rm -rf "$final.old"
  [ -e "$final" ] && mv "$final" "$final.old"
  mv "$built" "$final"
  rm -rf "$final.old"
}

run_stage() {
  local name=$1 fn=$2 start=$SECONDS
  CURRENT_STAGE=$name
  : >"$LOGS/$name.log"
  "$fn"
  STAGE_TIMES+=("$(printf '%-22s %5ss' "$name" "$((SECONDS - start))")")
  CURRENT_STAGE=""
}

print_stage_times() {
  say "elapsed per stage:"
  local line
  for line in "${STAGE_TIMES[@]}"; do printf '    %s\n' "$line" >&2; done
}
