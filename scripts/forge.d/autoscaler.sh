# Stage "autoscaler": the reference bookie autoscaler (autoscaler/, a crate of
# this workspace, whose binary is stateproof's bin bookie-autoscaler) on a
# Debian root filesystem (its binary links the same glibc), published to the
# local registry. The system under test of the autoscaler suites. It is built
# as the harness is (dev profile, the repository's target directory), which
# reuses the test build's dependencies: a release build of its own took 20
# minutes on two cores.

AUTOSCALER_IMAGE=stateproof/bookie-autoscaler:0.1.0
AUTOSCALER_PACKAGES=ca-certificates

stage_autoscaler() {
  local base=stateproof/autoscaler-packages:$DEBIAN_SUITE base_key key context binary
  base_key=$(cache_key autoscaler-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$AUTOSCALER_PACKAGES")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$AUTOSCALER_PACKAGES"
  fi
  key=$(cache_key autoscaler "$base_key" "$REPO_DIR/autoscaler" "$REPO_DIR/src/bin/bookie-autoscaler.rs" \
    "$REPO_DIR/Cargo.lock" "$REPO_DIR/images/bookie-autoscaler" "$FORGE_DIR/autoscaler.sh")
  if ! image_is_current "$AUTOSCALER_IMAGE" "$key"; then
    command -v cargo >/dev/null || die "cargo is not on PATH: the autoscaler is built from its crate"
    # Built with the e2e harness (its features unified with the harness's),
    # and without the package variables cargo gives the test process that
    # may have started the forge: build scripts' fingerprints read them
    # (ring's reads OUT_DIR and CARGO_PKG_NAME), and each build would redo
    # the other's.
    # shellcheck disable=SC2046
    run_logged "building the bookie autoscaler (cargo test --no-run --test e2e)" \
      env $(compgen -e | grep -E '^(CARGO_PKG_|CARGO_MANIFEST_|CARGO_BIN_EXE_|CARGO_CRATE_NAME$|CARGO_TARGET_TMPDIR$|OUT_DIR$)' | sed 's/^/-u /') \
      cargo test --no-run --locked --manifest-path "$REPO_DIR/Cargo.toml" --test e2e
    binary=$(target_dir)/debug/bookie-autoscaler
    context=$CACHE/context/bookie-autoscaler
    rm -rf "$context" && mkdir -p "$context"
    cp -r "$REPO_DIR/images/bookie-autoscaler/." "$context/"
    # Debug symbols would make the image ten times its size.
    strip -o "$context/bookie-autoscaler" "$binary"
    build_image "$AUTOSCALER_IMAGE" "$context" "$key" \
      "debian $DEBIAN_SUITE ($AUTOSCALER_PACKAGES) from $DEBIAN_MIRROR; bookie-autoscaler from $binary" \
      --build-arg "BASE=$base"
    rm -rf "$context"
  fi
  publish_image "$AUTOSCALER_IMAGE"
}

# Where cargo puts the repository's builds.
target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$REPO_DIR/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}
