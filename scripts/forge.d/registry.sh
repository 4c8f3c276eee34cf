# Stage "registry": the local registry (Debian's docker-registry package, the
# distribution registry) that serves the forge's workload images to kind's
# nodes, so that a new cluster needs no loading: each node pulls what its pods
# run, once. The host pushes to it at localhost:5001; nodes reach it as
# stateproof-registry:5000 on the docker network "kind" (kind's documented
# local-registry pattern, with containerd's certs.d). It keeps its images in
# the forge's cache and restarts with dockerd.

REGISTRY_IMAGE=stateproof/registry:2.8
REGISTRY_CONTAINER=stateproof-registry
REGISTRY_PUSH=localhost:5001
REGISTRY_PULL=http://$REGISTRY_CONTAINER:5000
REGISTRY_PACKAGES=docker-registry,ca-certificates
REGISTRY_DATA=$CACHE/registry

stage_registry() {
  local base=stateproof/registry-packages:$DEBIAN_SUITE base_key key
  base_key=$(cache_key registry-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$REGISTRY_PACKAGES")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$REGISTRY_PACKAGES"
  fi
  key=$(cache_key registry "$base_key" "$REPO_DIR/images/registry" "$FORGE_DIR/registry.sh")
  if ! image_is_current "$REGISTRY_IMAGE" "$key"; then
    build_image "$REGISTRY_IMAGE" "$REPO_DIR/images/registry" "$key" \
      "debian $DEBIAN_SUITE ($REGISTRY_PACKAGES) from $DEBIAN_MIRROR; images/registry" --build-arg "BASE=$base"
  fi
  ensure_registry_running
}

# The registry container, running the current image (re-created when it
# changed; started when dockerd came back without it).
ensure_registry_running() {
  local want running
  want=$(docker image inspect -f '{{.Id}}' "$REGISTRY_IMAGE")
  running=$(docker inspect -f '{{.Image}}' "$REGISTRY_CONTAINER" 2>/dev/null || true)
  if [ "$running" != "$want" ]; then
    docker rm -f "$REGISTRY_CONTAINER" >/dev/null 2>&1 || true
    mkdir -p "$REGISTRY_DATA"
    say "starting the local registry ($REGISTRY_PUSH on the host, $REGISTRY_PULL for kind's nodes)"
    docker run -d --name "$REGISTRY_CONTAINER" --restart=always -p "127.0.0.1:${REGISTRY_PUSH##*:}:5000" \
      -v "$REGISTRY_DATA:/var/lib/docker-registry" "$REGISTRY_IMAGE" >/dev/null
  elif [ "$(docker inspect -f '{{.State.Running}}' "$REGISTRY_CONTAINER")" != true ]; then
    docker start "$REGISTRY_CONTAINER" >/dev/null
  fi
  local waited=0
  until curl -fsS -o /dev/null "http://$REGISTRY_PUSH/v2/"; do
    sleep 1
    waited=$((waited + 1))
    ((waited < 30)) || die "the local registry does not answer at $REGISTRY_PUSH; see docker logs $REGISTRY_CONTAINER"
  done
}

# Pushes the image to the local registry, unless it already holds that very
# image (the stamp records the image ID last pushed); and, when the user names
# one (STATEPROOF_IMAGE_REGISTRY, e.g. registry.example.com/team), to theirs,
# with Docker's own login, for clusters that cannot reach this host.
publish_image() {
  local image=$1 id stamp
  id=$(docker image inspect -f '{{.Id}}' "$image")
  stamp=published-$(printf '%s' "$image" | tr -c 'a-z0-9\n' '-')
  if ! stamp_matches "$stamp" "$id" || ! registry_has "$image"; then
    push_as "$REGISTRY_PUSH/$image" "$image" "the local registry"
    write_stamp "$stamp" "$id"
  fi
  local theirs=${STATEPROOF_IMAGE_REGISTRY:-}
  if [ -n "$theirs" ] && [ "$theirs" != "$REGISTRY_PUSH" ]; then
    stamp=$stamp-to-$(printf '%s' "$theirs" | tr -c 'a-z0-9\n' '-')
    stamp_matches "$stamp" "$id" && return 0
    push_as "$theirs/$image" "$image" "$theirs"
    write_stamp "$stamp" "$id"
  fi
}

push_as() {
  local target=$1 image=$2 where=$3
  docker tag "$image" "$target"
  run_logged "publishing $image to $where" docker push -q "$target"
  docker rmi "$target" >/dev/null
}

registry_has() {
  curl -fsS -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY_PUSH/v2/${1%:*}/manifests/${1##*:}"
}

registry_facts() {
  printf 'push %s\npull %s\ncontainer %s\n' "$REGISTRY_PUSH" "$REGISTRY_PULL" "$REGISTRY_CONTAINER"
}
