# Stage "etcd": etcd 3.4 from Debian's etcd-server and etcd-client packages on
# a Debian rootfs (cached by package list), plus images/etcd/Dockerfile's
# layer of our launcher (cheap to rebuild), published to the local registry.
# (ETCD_IMAGE is taken: addons.sh names Kubernetes' own etcd so.)

ETCD_WORKLOAD_IMAGE=stateproof/etcd:3.4
# curl: probes and people ask the members' HTTP endpoints (/health, /version).
ETCD_PACKAGES=etcd-server,etcd-client,bash,procps,hostname,curl

stage_etcd() {
  packaged_image etcd "$ETCD_WORKLOAD_IMAGE" "stateproof/etcd-packages:$DEBIAN_SUITE" "$ETCD_PACKAGES" \
    "$FORGE_DIR/etcd.sh"
}
