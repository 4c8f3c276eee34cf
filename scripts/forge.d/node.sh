# Stages "node-base" and "node-image": kind's node base image from Debian
# packages, our own node files and the runtime stage's binaries; then kind's
# own `build node-image --type file` over a hand-assembled server tarball that
# already holds every add-on image, so that kind fetches nothing.

BASE_IMAGE=stateproof/kind-base:$KIND_VERSION-$DEBIAN_SUITE
NODE_IMAGE=stateproof/kind-node:$K8S_VERSION
NODE_FILES=$REPO_DIR/images/node/files
BASE_PACKAGES=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,socat

# systemd as a container's PID 1: only the units a kind node needs.
prune_systemd() {
  local root=$1
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  ln -sf /lib/systemd/systemd "$root/sbin/init"
}

install_node_files() {
  local root=$1
  cp -a "$NODE_FILES/." "$root/"
  prune_systemd "$root"
  chroot "$root" systemctl enable containerd.service kubelet.service >/dev/null 2>&1
  chroot "$root" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  install -m0755 "$RUNTIME_OUT"/{containerd,ctr,containerd-shim-runc-v2} "$root/usr/local/bin/"
  install -m0755 "$RUNTIME_OUT/runc" "$root/usr/local/sbin/runc"
  mkdir -p "$root/opt/cni/bin" "$root/etc/kubernetes/manifests" "$root/etc/containerd/certs.d"
  install -m0755 "$RUNTIME_OUT"/cni/* "$root/opt/cni/bin/"
  "$RUNTIME_OUT/ctr" oci spec | jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
  rm -f "$root/etc/machine-id"
}

stage_node_base() {
  local key root=$CACHE/rootfs/kind-base context
  key=$(cache_key node-base "$BASE_PACKAGES" "$NODE_FILES" "$FORGE_DIR/node.sh" "$(cat "$CACHE/stamps/runtime" 2>/dev/null)")
  image_is_current "$BASE_IMAGE" "$key" && return 0
  [ -x "$RUNTIME_OUT/containerd" ] || die "runtime binaries are missing: run the 'runtime' stage first"
  rm -rf "$root" && mkdir -p "$root"
  run_logged "debootstrap $DEBIAN_SUITE for the node base" debootstrap --variant=minbase --include="$BASE_PACKAGES" \
    "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR"
  install_node_files "$root"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  context=$root.context
  rm -rf "$context" && mkdir -p "$context"
  run_logged "packing the node base rootfs" tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' \
    --exclude='./sys/*' -cf "$context/rootfs.tar" .
  printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' 'ENV container=docker' 'STOPSIGNAL SIGRTMIN+3' \
    'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' >"$context/Dockerfile"
  build_image "$BASE_IMAGE" "$context" "$key" \
    "debian $DEBIAN_SUITE ($BASE_PACKAGES); containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CNI plugins $CNI_PLUGINS_VERSION; images/node/files"
  rm -rf "$root" "$context"
}

# kind imports only the four control-plane archives of the tarball and counts
# as already present exactly the names it reads from each archive. It reads
# the `repositories` member when that comes before `manifest.json`, so
# kube-proxy.tar carries every add-on with a hand-written `repositories` first.
write_addon_archive() {
  local archive=$1 unpacked
  unpacked=$(mktemp -d "$CACHE/addon-archive.XXXXXX")
  mapfile -t images < <(addon_images)
  docker save "${images[@]}" | tar -C "$unpacked" -xf -
  jq -n '[$ARGS.positional[] | capture("^(?<repo>.+):(?<tag>[^:]+)$")]
         | reduce .[] as $i ({}; .[$i.repo][$i.tag] = "0")' --args "${images[@]}" >"$unpacked/repositories"
  (cd "$unpacked" && tar -cf "$archive" repositories manifest.json $(ls -A | grep -vx -e repositories -e manifest.json))
  rm -rf "$unpacked"
}

write_server_tarball() {
  local tarball=$1 tree component
  tree=$(mktemp -d "$CACHE/server-tarball.XXXXXX")
  mkdir -p "$tree/kubernetes/server/bin"
  printf '%s' "$K8S_VERSION" >"$tree/kubernetes/version"
  install -m0755 "$K8S_OUT"/{kubeadm,kubelet,kubectl} "$tree/kubernetes/server/bin/"
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    docker save -o "$tree/kubernetes/server/bin/$component.tar" "registry.k8s.io/$component:$K8S_VERSION"
  done
  write_addon_archive "$tree/kubernetes/server/bin/kube-proxy.tar"
  tar -C "$tree" -czf "$tarball" kubernetes
  rm -rf "$tree"
}

node_image_key() {
  local image inputs=()
  for image in $(addon_images) "registry.k8s.io/kube-apiserver:$K8S_VERSION" \
    "registry.k8s.io/kube-controller-manager:$K8S_VERSION" "registry.k8s.io/kube-scheduler:$K8S_VERSION" "$BASE_IMAGE"; do
    inputs+=("$image=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)")
  done
  cache_key node-image "$FORGE_DIR/node.sh" "$(cat "$CACHE/stamps/kubernetes" 2>/dev/null)" "${inputs[@]}"
}

stage_node_image() {
  local key scratch tarball=$CACHE/kubernetes-server-linux-amd64.tar.gz
  key=$(node_image_key)
  if stamp_matches node-image "$key" && docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then return 0; fi
  run_logged "assembling the Kubernetes server tarball with every add-on image" write_server_tarball "$tarball"
  scratch=stateproof-forge-scratch/kind-node:$key
  run_logged "kind build node-image --type file (nothing is pulled)" kind build node-image --type file "$tarball" \
    --base-image "$BASE_IMAGE" --image "$scratch"
  grep -q 'Failed to pull' "$LOGS/node-image.log" && die "kind tried to pull an add-on image; see $LOGS/node-image.log"
  docker tag "$scratch" "$NODE_IMAGE" && docker rmi "$scratch" >/dev/null
  rm -f "$tarball"
  write_stamp node-image "$key"
}
