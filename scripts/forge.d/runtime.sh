# Stage "runtime": the container runtime of the kind node (containerd, its
# shim and ctr, runc) and the CNI plugins, built from their modules.

RUNTIME_OUT=$OUT/runtime
CNI_PLUGINS="ipam/host-local main/loopback main/ptp meta/portmap"

# Every Go build goes through a wrapper module that requires the module by
# its exact path: containerd, runc and etcd carry exclude or relative replace
# directives that `go install pkg@version` refuses, and this proxy answers
# 403 rather than 404 for the longer paths `go install` probes first.
build_in_wrapper_module() {
  local name=$1 requirement=$2
  shift 2
  local dir=$CACHE/gomod/$name
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && go mod init "stateproof.local/$name" >/dev/null 2>&1 && go mod edit -require="$requirement" && go build "$@")
}

build_containerd() {
  local out=$1 module=github.com/containerd/containerd/v2
  CGO_ENABLED=0 build_in_wrapper_module containerd "$module@$CONTAINERD_VERSION" -trimpath \
    -tags "no_btrfs no_devmapper no_zfs no_aufs urfave_cli_no_docs" \
    -ldflags "-s -w -X $module/version.Version=$CONTAINERD_VERSION -X $module/version.Package=$module" \
    -o "$out/" "$module/cmd/containerd" "$module/cmd/ctr" "$module/cmd/containerd-shim-runc-v2"
}

build_runc() {
  CGO_ENABLED=1 build_in_wrapper_module runc "github.com/opencontainers/runc@$RUNC_VERSION" -trimpath \
    -buildmode=pie -tags "seccomp urfave_cli_no_docs" -ldflags "-X main.version=${RUNC_VERSION#v}" \
    -o "$1/runc" github.com/opencontainers/runc
}

build_cni_plugins() {
  local plugin packages=()
  for plugin in $CNI_PLUGINS; do
    packages+=("github.com/containernetworking/plugins/plugins/$plugin")
  done
  mkdir -p "$1/cni"
  CGO_ENABLED=0 build_in_wrapper_module cni-plugins "github.com/containernetworking/plugins@$CNI_PLUGINS_VERSION" \
    -trimpath -ldflags "-s -w" -o "$1/cni/" "${packages[@]}"
}

stage_runtime() {
  local key build=$RUNTIME_OUT.building
  key=$(cache_key runtime "$CONTAINERD_VERSION" "$RUNC_VERSION" "$CNI_PLUGINS_VERSION" "$FORGE_DIR/runtime.sh")
  if stamp_matches runtime "$key" && [ -x "$RUNTIME_OUT/containerd" ]; then return 0; fi
  rm -rf "$build" && mkdir -p "$build"
  run_logged "building containerd $CONTAINERD_VERSION" build_containerd "$build"
  run_logged "building runc $RUNC_VERSION (cgo, seccomp)" build_runc "$build"
  run_logged "building CNI plugins $CNI_PLUGINS_VERSION" build_cni_plugins "$build"
  "$build/containerd" --version | grep -q "${CONTAINERD_VERSION}" || die "containerd reports the wrong version"
  publish_dir "$build" "$RUNTIME_OUT"
  write_stamp runtime "$key"
}
