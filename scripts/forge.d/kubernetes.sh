# Stages "kind" and "kubernetes": the kind CLI, and the Kubernetes server
# binaries built from the k8s.io/kubernetes module with real version stamps.

K8S_OUT=$OUT/kubernetes-$K8S_VERSION
K8S_BINARIES="kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy"

stage_kind() {
  local key
  key=$(cache_key kind "$KIND_VERSION")
  if stamp_matches kind "$key" && [ -x "$BIN/kind" ]; then return 0; fi
  check_go_proxy
  run_logged "go install sigs.k8s.io/kind@$KIND_VERSION" \
    env CGO_ENABLED=0 GOBIN="$BIN" go install "sigs.k8s.io/kind@$KIND_VERSION"
  "$BIN/kind" version | grep -q "$KIND_VERSION" || die "kind reports $("$BIN/kind" version), expected $KIND_VERSION"
  write_stamp kind "$key"
}

kind_module_dir() {
  (cd "$CACHE" && go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
}

# k8s.io/kubernetes requires its staging modules as v0.0.0 and replaces them
# with local directories that are not in the module zip; a wrapper module maps
# each one to its published v0.<minor>.<patch> instead.
write_kubernetes_wrapper_module() {
  local dir=$1 gomod staging=v0.${K8S_VERSION#v1.}
  gomod=$(cd "$CACHE" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)
  mkdir -p "$dir"
  printf 'module stateproof.local/kubernetes\n\ngo %s\n' "$(go mod edit -json "$gomod" | jq -r .Go)" >"$dir/go.mod"
  (
    cd "$dir"
    go mod edit -json "$gomod" | jq -r '.Godebug[]? | "\(.Key)=\(.Value)"' | while read -r setting; do
      go mod edit -godebug="$setting"
    done
    go mod edit -json "$gomod" | jq -r '.Replace[] | [.Old.Path, .New.Path, (.New.Version // "")] | @tsv' |
      while IFS=$'\t' read -r old new version; do
        case "$new" in
          ./staging/*) go mod edit -replace="$old=$old@$staging" ;;
          ./* | ../*) die "unexpected local replace in k8s.io/kubernetes: $old => $new" ;;
          *) go mod edit -replace="$old=$new@$version" ;;
        esac
      done
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
  )
}

kubernetes_ldflags() {
  local minor commit package flags="-s -w"
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  commit=$(cd "$CACHE" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r '.Origin.Hash // empty')
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags="$flags -X $package.gitVersion=$K8S_VERSION -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    flags="$flags -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
    [ -n "$commit" ] && flags="$flags -X $package.gitCommit=$commit"
  done
  printf '%s' "$flags"
}

stage_kubernetes() {
  local key build=$K8S_OUT.building wrapper=$CACHE/gomod/kubernetes targets="" binary
  key=$(cache_key kubernetes "$K8S_VERSION" "$FORGE_DIR/kubernetes.sh")
  if stamp_matches kubernetes "$key" && [ -x "$K8S_OUT/kubeadm" ]; then return 0; fi
  check_go_proxy
  rm -rf "$build" "$wrapper"
  write_kubernetes_wrapper_module "$wrapper"
  for binary in $K8S_BINARIES; do targets="$targets k8s.io/kubernetes/cmd/$binary"; done
  mkdir -p "$build"
  # shellcheck disable=SC2086
  run_logged "compiling Kubernetes $K8S_VERSION ($K8S_BINARIES); the longest stage, about 20-30 min cold" \
    sh -c "cd '$wrapper' && CGO_ENABLED=0 go build -trimpath -ldflags '$(kubernetes_ldflags)' -o '$build/' $targets"
  [ "$("$build/kubeadm" version -o short)" = "$K8S_VERSION" ] ||
    die "kubeadm reports '$("$build/kubeadm" version -o short)', expected $K8S_VERSION: version stamping failed"
  publish_dir "$build" "$K8S_OUT"
  write_stamp kubernetes "$key"
}
