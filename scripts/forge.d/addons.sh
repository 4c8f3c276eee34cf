# Stages "debian" and "addons": Debian root filesystems shared by several
# images, and the images kubeadm and kind ask for by exact name (control-plane
# components, etcd, CoreDNS, pause, kindnetd, local-path provisioner/helper).

NET_IMAGE=stateproof/debian-net:$DEBIAN_SUITE
NET_PACKAGES=iptables,nftables,conntrack,ipset,kmod,iproute2,ca-certificates,curl,jq
ADDONS_OUT=$OUT/addons
PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

host_iptables_mode() { iptables -V 2>/dev/null | grep -q nf_tables && echo nft || echo legacy; }

# debootstrap into a directory, let the caller adjust it, then import it as an
# image. $1 tag, $2 key, $3 packages, $4 optional function run on the rootfs,
# $5 the image's default command.
import_debian_rootfs() {
  local tag=$1 key=$2 packages=$3 customize=${4:-} command=${5:-/bin/bash} root
  root=$CACHE/rootfs/$(printf '%s' "$tag" | tr -c 'a-z0-9\n' '-')
  rm -rf "$root" && mkdir -p "$root"
  check_network_sources
  run_logged "debootstrap $DEBIAN_SUITE for $tag" debootstrap --variant=minbase --include="$packages" \
    "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR"
  if [ -n "$customize" ]; then "$customize" "$root"; fi
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  local context=$root.context
  rm -rf "$context" && mkdir -p "$context"
  tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$context/rootfs.tar" .
  printf 'FROM scratch\nADD rootfs.tar /\n%s\nCMD ["%s"]\n' "$PATH_ENV" "$command" >"$context/Dockerfile"
  build_image "$tag" "$context" "$key" "debian $DEBIAN_SUITE ($packages) from $DEBIAN_MIRROR"
  rm -rf "$root" "$context"
}

use_host_iptables_mode() {
  local mode
  mode=$(host_iptables_mode)
  chroot "$1" update-alternatives --set iptables "/usr/sbin/iptables-$mode" >/dev/null
  chroot "$1" update-alternatives --set ip6tables "/usr/sbin/ip6tables-$mode" >/dev/null
}

stage_debian() {
  local key
  key=$(cache_key debian "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$NET_PACKAGES" "$(host_iptables_mode)")
  if ! image_is_current "$NET_IMAGE" "$key"; then
    import_debian_rootfs "$NET_IMAGE" "$key" "$NET_PACKAGES" use_host_iptables_mode
  fi
}

# The names kubeadm will ask for depend on the Kubernetes patch release; ask it.
kubeadm_image() { "$K8S_OUT/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null | grep "/$1:"; }
kind_constant() { grep -ho "docker.io/kindest/$1:[^\"]*" "$(kind_module_dir)"/pkg/build/nodeimage/const_*.go; }

ETCD_IMAGE="" COREDNS_IMAGE="" KUBEADM_PAUSE_IMAGE="" SANDBOX_IMAGE=registry.k8s.io/pause:3.10
KINDNETD_IMAGE="" PROVISIONER_IMAGE="" HELPER_IMAGE=""
resolve_addon_names() {
  [ -z "$ETCD_IMAGE" ] || return 0
  [ -x "$K8S_OUT/kubeadm" ] || die "Kubernetes binaries are missing: run the 'kubernetes' stage first"
  ETCD_IMAGE=$(kubeadm_image etcd)
  COREDNS_IMAGE=$(kubeadm_image coredns)
  KUBEADM_PAUSE_IMAGE=$(kubeadm_image pause)
  KINDNETD_IMAGE=$(kind_constant kindnetd)
  PROVISIONER_IMAGE=$(kind_constant local-path-provisioner)
  HELPER_IMAGE=$(kind_constant local-path-helper)
}

# Each add-on: a binary built into $ADDONS_OUT/<name>/ and a Dockerfile there.
addon_context() { mkdir -p "$ADDONS_OUT/$1" && printf '%s' "$ADDONS_OUT/$1"; }

build_go_addon() {
  local name=$1 ver=$2
  shift 2
  local dir
  dir=$(addon_context "$name")
  run_logged "building $name $ver" env CGO_ENABLED=0 GOBIN="$dir" go install -trimpath -ldflags "-s -w" "$@"
}

addon_etcd() {
  local version dir
  version=v$(echo "${ETCD_IMAGE##*:}" | sed 's/-[0-9]*$//')
  dir=$(addon_context etcd)
  CGO_ENABLED=0 run_logged "building etcd $version" build_in_wrapper_module etcd "go.etcd.io/etcd/server/v3@$version" \
    -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3
  printf 'FROM scratch\nCOPY etcd /usr/local/bin/etcd\n%s\n' "$PATH_ENV" >"$dir/Dockerfile"
  printf 'go.etcd.io/etcd/server/v3@%s' "$version"
}

addon_coredns() {
  local version=${COREDNS_IMAGE##*:} dir
  build_go_addon coredns "$version" "github.com/coredns/coredns@$version"
  dir=$(addon_context coredns)
  printf 'FROM scratch\nCOPY coredns /coredns\nEXPOSE 53 53/udp\nENTRYPOINT ["/coredns"]\n' >"$dir/Dockerfile"
  printf 'github.com/coredns/coredns@%s' "$version"
}

addon_pause() {
  local dir
  dir=$(addon_context pause)
  run_logged "compiling pause" gcc -Os -static -o "$dir/pause" "$REPO_DIR/images/pause/pause.c"
  strip "$dir/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$dir/Dockerfile"
  printf 'images/pause/pause.c (gcc -static)'
}

# kind's kindnetd module is not served by the proxy; images/kindnetd/ holds
# our own implementation of its contract, under the name kind asks for.
addon_kindnetd() {
  local dir
  dir=$(addon_context kindnetd)
  install -m0755 "$REPO_DIR/images/kindnetd/kindnetd" "$dir/kindnetd"
  printf 'FROM %s\nCOPY kindnetd /bin/kindnetd\nCMD ["/bin/kindnetd"]\n' "$NET_IMAGE" >"$dir/Dockerfile"
  printf 'images/kindnetd/kindnetd (stateproof) on %s' "$NET_IMAGE"
}

addon_provisioner() {
  local dir
  build_go_addon local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION"
  dir=$(addon_context local-path-provisioner)
  printf 'FROM scratch\nCOPY local-path-provisioner /usr/local/bin/\n%s\nENTRYPOINT ["/usr/local/bin/local-path-provisioner"]\n' \
    "$PATH_ENV" >"$dir/Dockerfile"
  printf 'github.com/rancher/local-path-provisioner@%s' "$LOCAL_PATH_PROVISIONER_VERSION"
}

addon_helper() {
  local dir tool
  dir=$(addon_context local-path-helper)
  mkdir -p "$dir/bin" && cp /bin/busybox "$dir/bin/busybox"
  for tool in sh mkdir rm; do ln -sf busybox "$dir/bin/$tool"; done
  printf 'FROM scratch\nCOPY bin/ /bin/\n%s\n' "$PATH_ENV" >"$dir/Dockerfile"
  printf 'debian busybox-static %s' "$(dpkg-query -W -f '${Version}' busybox-static)"
}

addon_control_plane() {
  local component=$1 dir
  dir=$(addon_context "$component")
  cp "$K8S_OUT/$component" "$dir/"
  if [ "$component" = kube-proxy ]; then
    printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\n' "$NET_IMAGE" >"$dir/Dockerfile"
  else
    printf 'FROM scratch\nCOPY %s /usr/local/bin/%s\n%s\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
      "$component" "$component" "$PATH_ENV" "$component" >"$dir/Dockerfile"
  fi
  printf 'k8s.io/kubernetes/cmd/%s@%s' "$component" "$K8S_VERSION"
}

# $1 image, $2 context name, $3 recipe function (fills the context, prints
# the sources), $4... recipe arguments.
ensure_addon() {
  local image=$1 context=$2 recipe=$3
  shift 3
  local key sources
  key=$(cache_key addons "$FORGE_DIR/addons.sh" "$image" "$recipe" "$@" "$K8S_VERSION" "$KIND_VERSION" \
    "$LOCAL_PATH_PROVISIONER_VERSION" "$(cat "$CACHE/stamps/kubernetes" 2>/dev/null)" "$REPO_DIR/images/pause" \
    "$REPO_DIR/images/kindnetd" "$(image_key "$NET_IMAGE")")
  image_is_current "$image" "$key" && return 0
  sources=$("$recipe" "$@")
  build_image "$image" "$(addon_context "$context")" "$key" "$sources"
}

stage_addons() {
  resolve_addon_names
  local component
  for component in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    ensure_addon "registry.k8s.io/$component:$K8S_VERSION" "$component" addon_control_plane "$component"
  done
  ensure_addon "$ETCD_IMAGE" etcd addon_etcd
  ensure_addon "$COREDNS_IMAGE" coredns addon_coredns
  ensure_addon "$SANDBOX_IMAGE" pause addon_pause
  alias_image "$SANDBOX_IMAGE" "$KUBEADM_PAUSE_IMAGE"
  ensure_addon "$KINDNETD_IMAGE" kindnetd addon_kindnetd
  ensure_addon "$PROVISIONER_IMAGE" local-path-provisioner addon_provisioner
  ensure_addon "$HELPER_IMAGE" local-path-helper addon_helper
}

addon_images() {
  resolve_addon_names
  printf '%s\n' "registry.k8s.io/kube-proxy:$K8S_VERSION" "$ETCD_IMAGE" "$COREDNS_IMAGE" "$SANDBOX_IMAGE" \
    "$KUBEADM_PAUSE_IMAGE" "$KINDNETD_IMAGE" "$PROVISIONER_IMAGE" "$HELPER_IMAGE"
}
