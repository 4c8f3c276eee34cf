# Stage "etcd": etcd 3.4 from Debian's etcd-server and etcd-client packages on
# a Debian rootfs (cached by package list), plus images/etcd/Dockerfile's
# layer of our launcher (cheap to rebuild), published to the local registry.
# (ETCD_IMAGE is taken: addons.sh names Kubernetes' own etcd so.)

ETCD_WORKLOAD_IMAGE=stateproof/etcd:3.4
# curl: probes and people ask the members' HTTP endpoints (/health, /version).
ETCD_PACKAGES=etcd-server,etcd-client,bash,procps,hostname,curl

stage_etcd() {
  local base=stateproof/etcd-packages:$DEBIAN_SUITE base_key key
  base_key=$(cache_key etcd-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$ETCD_PACKAGES")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$ETCD_PACKAGES"
  fi
  key=$(cache_key etcd "$base_key" "$REPO_DIR/images/etcd" "$FORGE_DIR/etcd.sh")
  if ! image_is_current "$ETCD_WORKLOAD_IMAGE" "$key"; then
    build_image "$ETCD_WORKLOAD_IMAGE" "$REPO_DIR/images/etcd" "$key" \
      "debian $DEBIAN_SUITE ($ETCD_PACKAGES) from $DEBIAN_MIRROR; images/etcd" --build-arg "BASE=$base"
  fi
  publish_image "$ETCD_WORKLOAD_IMAGE"
}
