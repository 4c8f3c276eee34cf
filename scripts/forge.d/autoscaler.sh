# Stage "autoscaler": the reference bookie autoscaler (autoscaler/, a crate of
# this workspace), built with the host's cargo in release mode, on a Debian
# root filesystem (its binary links the same glibc), published to the local
# registry. The system under test of the autoscaler suites.

AUTOSCALER_IMAGE=stateproof/bookie-autoscaler:0.1.0
AUTOSCALER_PACKAGES=ca-certificates

stage_autoscaler() {
  local base=stateproof/autoscaler-packages:$DEBIAN_SUITE base_key key context
  base_key=$(cache_key autoscaler-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$AUTOSCALER_PACKAGES")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$AUTOSCALER_PACKAGES"
  fi
  key=$(cache_key autoscaler "$base_key" "$REPO_DIR/autoscaler/src" "$REPO_DIR/autoscaler/Cargo.toml" \
    "$REPO_DIR/Cargo.lock" "$REPO_DIR/images/bookie-autoscaler" "$FORGE_DIR/autoscaler.sh")
  if ! image_is_current "$AUTOSCALER_IMAGE" "$key"; then
    command -v cargo >/dev/null || die "cargo is not on PATH: the autoscaler is built from its crate"
    run_logged "building the bookie autoscaler (cargo build --release)" cargo build --release --locked \
      --manifest-path "$REPO_DIR/Cargo.toml" -p bookie-autoscaler --target-dir "$CACHE/cargo"
    context=$CACHE/context/bookie-autoscaler
    rm -rf "$context" && mkdir -p "$context"
    cp -r "$REPO_DIR/images/bookie-autoscaler/." "$CACHE/cargo/release/bookie-autoscaler" "$context/"
    build_image "$AUTOSCALER_IMAGE" "$context" "$key" \
      "debian $DEBIAN_SUITE ($AUTOSCALER_PACKAGES) from $DEBIAN_MIRROR; autoscaler/ (cargo, release)" \
      --build-arg "BASE=$base"
    rm -rf "$context"
  fi
  publish_image "$AUTOSCALER_IMAGE"
}
