# Stages "node-base" and "node-image": kind's node base image from Debian
# packages, our own node files and the runtime stage's binaries; then kind's
# own `build node-image --type file` over a hand-assembled server tarball that
# already holds every add-on image, so that kind fetches nothing.

BASE_PACKAGES_IMAGE=stateproof/kind-base-packages:$DEBIAN_SUITE
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

# The node's files and runtime binaries go on as a thin layer over the
# packages, so changing them does not repeat the debootstrap.
write_base_context() {
  local context=$1
  mkdir -p "$context/runtime"
  cp -a "$NODE_FILES" "$context/files"
  cp -a "$RUNTIME_OUT"/{containerd,ctr,containerd-shim-runc-v2,runc,cni} "$context/runtime/"
  "$RUNTIME_OUT/ctr" oci spec | jq 'del(.process.rlimits)' >"$context/files/etc/containerd/cri-base.json"
  printf '%s\n' "FROM $BASE_PACKAGES_IMAGE" 'COPY files/ /' \
    'COPY runtime/containerd runtime/ctr runtime/containerd-shim-runc-v2 /usr/local/bin/' \
    'COPY runtime/runc /usr/local/sbin/runc' 'COPY runtime/cni/ /opt/cni/bin/' \
    'RUN systemctl enable containerd.service kubelet.service && systemctl mask systemd-binfmt.service && mkdir -p /etc/kubernetes/manifests /etc/containerd/certs.d && rm -f /etc/machine-id' \
    'ENV container=docker' 'STOPSIGNAL SIGRTMIN+3' 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' 'CMD []' \
    >"$context/Dockerfile"
}

prune_base_rootfs() {
  prune_systemd "$1"
  rm -f "$1/etc/machine-id"
}

stage_node_base() {
  local packages_key key context=$CACHE/context/kind-base
  packages_key=$(cache_key node-base-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$BASE_PACKAGES" "$FORGE_DIR/node.sh")
  if ! image_is_current "$BASE_PACKAGES_IMAGE" "$packages_key"; then
    import_debian_rootfs "$BASE_PACKAGES_IMAGE" "$packages_key" "$BASE_PACKAGES" prune_base_rootfs
  fi
  key=$(cache_key node-base "$packages_key" "$NODE_FILES" "$(cat "$CACHE/stamps/runtime" 2>/dev/null)")
  image_is_current "$BASE_IMAGE" "$key" && return 0
  [ -x "$RUNTIME_OUT/containerd" ] || die "runtime binaries are missing: run the 'runtime' stage first"
  rm -rf "$context" && write_base_context "$context"
  build_image "$BASE_IMAGE" "$context" "$key" \
    "debian $DEBIAN_SUITE ($BASE_PACKAGES); containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CNI plugins $CNI_PLUGINS_VERSION; images/node/files"
  rm -rf "$context"
}

# kind imports only the four control-plane archives of the tarball and counts
# as already present exactly the names it reads from each archive. It reads
# the `repositories` member when that comes before `manifest.json`, so
# kube-proxy.tar carries every add-on with a hand-written `repositories` first.
write_addon_archive() {
  local archive=$1 unpacked images
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
  cache_key node-image "$KIND_VERSION" "$FORGE_DIR/node.sh" "$(cat "$CACHE/stamps/kubernetes" 2>/dev/null)" "${inputs[@]}"
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
