# Stage "manifest": a JSON record of every image the forge produced, with its
# image ID and what it was built from, for users and for the harness.

MANIFEST=$CACHE/manifest.json

forge_images() {
  local component
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    printf '%s\n' "registry.k8s.io/$component:$K8S_VERSION"
  done
  addon_images
  printf '%s\n' "$NET_IMAGE" "$BASE_PACKAGES_IMAGE" "$BASE_IMAGE" "$NODE_IMAGE"
  # every stage's images as scripts/forge declares them (a new system's too)
  stage_images | awk '{ print $2 }'
}

image_record() {
  docker image inspect "$1" 2>/dev/null | jq -c --arg name "$1" --arg key_label "$KEY_LABEL" --arg src_label "$SOURCES_LABEL" \
    '.[0] | {name: ($name | sub(":[^:/]+$"; "")), tag: ($name | capture(":(?<t>[^:/]+)$").t), image: $name, id: .Id,
             created: .Created, size: .Size, key: (.Config.Labels[$key_label] // null),
             sources: (.Config.Labels[$src_label] // null)}'
}

stage_manifest() {
  local image record records=() missing=()
  for image in $(forge_images | sort -u); do
    if record=$(image_record "$image") && [ -n "$record" ]; then records+=("$record"); else missing+=("$image"); fi
  done
  local pins
  pins=$(grep -E '^[A-Z0-9_]+=' "$FORGE_DIR/pins.env" | jq -R 'split("=") | {(.[0]): (.[1:] | join("="))}' | jq -s add)
  printf '%s\n' "${records[@]}" | jq -s --argjson pins "$pins" --arg missing "${missing[*]}" \
    '{pins: $pins, images: ., missing: ($missing | split(" ") | map(select(. != "")))}' >"$MANIFEST.tmp"
  mv "$MANIFEST.tmp" "$MANIFEST"
  [ ${#missing[@]} -eq 0 ] || say "not built yet: ${missing[*]}"
}
