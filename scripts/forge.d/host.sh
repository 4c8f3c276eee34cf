# Stage "host": what the machine needs before anything is built: root, disk,
# the package mirror and Go proxy, a cgroup setup kind can use, host packages,
# the inotify limits of multi-node kind, and a Docker engine that answers.

HOST_PACKAGES="docker.io debootstrap jq gcc libc6-dev libseccomp-dev pkg-config busybox-static iptables curl maven"
# A cold build of every stage peaks at about 14 GiB; building only the
# workload images (with a published node image) needs far less.
MIN_FREE_GIB=${STATEPROOF_FORGE_MIN_FREE_GIB:-20}

preflight() {
  [ "$(id -u)" = 0 ] || die "the forge must run as root (it installs packages, starts dockerd and runs debootstrap)"
  mkdir -p "$CACHE"
  check_cgroups
}

# Asked only once Docker answers: a warm cache whose engine is merely stopped
# is not a cold build.
check_free_space() {
  local free_gib
  free_gib=$(($(df -Pk "$CACHE" | awk 'NR==2 {print $4}') / 1024 / 1024))
  if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1 && ((free_gib < MIN_FREE_GIB)); then
    die "only ${free_gib} GiB free under $CACHE; a cold build needs at least ${MIN_FREE_GIB} GiB"
  fi
}

check_cgroups() {
  [ -d /sys/fs/cgroup ] || die "no /sys/fs/cgroup: kind nodes need cgroups"
  [ -f /sys/fs/cgroup/cgroup.controllers ] && return 0
  local controller
  for controller in cpu memory pids devices freezer; do
    [ -d "/sys/fs/cgroup/$controller" ] ||
      die "cgroup v1 controller '$controller' is not mounted under /sys/fs/cgroup; kind's kubelet cannot run"
  done
  [ -d /sys/fs/cgroup/systemd ] || die "cgroup v1 without the name=systemd hierarchy: kind nodes run systemd"
}

check_network_sources() {
  curl -fsS --max-time 20 -o /dev/null "$DEBIAN_MIRROR/dists/$DEBIAN_SUITE/Release" ||
    die "the Debian mirror $DEBIAN_MIRROR cannot be reached (needed for debootstrap and apt)"
}

check_go_proxy() {
  (cd "$CACHE" && go list -m "k8s.io/kubernetes@$K8S_VERSION" >/dev/null 2>&1) ||
    die "the Go module proxy ($(go env GOPROXY)) does not answer for k8s.io/kubernetes@$K8S_VERSION"
}

install_host_packages() {
  local missing="" pkg wanted=$HOST_PACKAGES
  # An engine that already answers (Docker CE, say) is used as it is.
  docker info >/dev/null 2>&1 && wanted=${wanted/docker.io/}
  for pkg in $wanted; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing="$missing $pkg"
  done
  [ -z "$missing" ] && return 0
  check_network_sources
  run_logged "apt-get update" apt-get update -q
  # shellcheck disable=SC2086
  run_logged "installing host packages:$missing" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends $missing
}

raise_inotify_limits() {
  sysctl -qw fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512 ||
    say "warning: could not raise inotify limits; multi-node kind may fail with 'too many open files'"
}

root_lacks_sys_resource() {
  local bounding
  bounding=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
  ((((0x$bounding >> 24) & 1) == 0))
}

start_dockerd() {
  local runtime_args=()
  if root_lacks_sys_resource; then
    install -D -m0755 "$FORGE_DIR/runc-wrapper" /usr/local/libexec/stateproof/runc-wrapper
    runtime_args=(--add-runtime "stateproof-runc=/usr/local/libexec/stateproof/runc-wrapper"
      --default-runtime stateproof-runc)
    say "root lacks CAP_SYS_RESOURCE: dockerd gets a runc wrapper that drops it from container specs"
  fi
  mkdir -p /lib/modules # kind bind-mounts it; this kernel has no modules directory
  say "starting dockerd (log: $LOGS/dockerd.log)"
  # fd 9 holds the forge's lock: dockerd outlives this run and must not keep it
  nohup dockerd "${runtime_args[@]}" >>"$LOGS/dockerd.log" 2>&1 9>&- &
  local waited=0
  until docker info >/dev/null 2>&1; do
    sleep 1
    waited=$((waited + 1))
    ((waited < 60)) || die "dockerd did not answer within 60s; see $LOGS/dockerd.log"
  done
}

ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || die "no dockerd after installing docker.io"
  start_dockerd
}

stage_host() {
  preflight
  install_host_packages
  raise_inotify_limits
  ensure_docker
  check_free_space
  mkdir -p /lib/modules
}
