# Workload images: the systems the reference fixtures run. Each is a Debian
# root filesystem with the system's packages (cached by package list), plus a
# thin layer of our scripts from images/<name>/ (cheap to rebuild).

ZOOKEEPER_IMAGE=stateproof/zookeeper:3.8
ZOOKEEPER_PACKAGES=libzookeeper-java,libslf4j-java,liblog4j1.2-java,$JRE_DEBIAN_PACKAGE,netcat-openbsd,procps,bash,hostname

stage_zookeeper() {
  local base=stateproof/zookeeper-packages:3.8 base_key key context
  base_key=$(cache_key zookeeper-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$ZOOKEEPER_PACKAGES")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$ZOOKEEPER_PACKAGES"
  fi
  key=$(cache_key zookeeper "$base_key" "$REPO_DIR/images/zookeeper" "$FORGE_DIR/workloads.sh")
  image_is_current "$ZOOKEEPER_IMAGE" "$key" && return 0
  context=$CACHE/context/zookeeper
  rm -rf "$context" && mkdir -p "$context" && cp -r "$REPO_DIR/images/zookeeper/." "$context/"
  printf '%s\n' "FROM $base" 'COPY bin/ /usr/local/bin/' 'COPY conf/ /etc/zookeeper/conf/' \
    'RUN ln -s /usr/local/bin/zk-cli /usr/local/bin/zkCli.sh && mkdir -p /var/lib/zookeeper /var/log/zookeeper' \
    'CMD ["zk-run"]' >"$context/Dockerfile"
  build_image "$ZOOKEEPER_IMAGE" "$context" "$key" \
    "debian $DEBIAN_SUITE ($ZOOKEEPER_PACKAGES) from $DEBIAN_MIRROR; images/zookeeper"
}

workload_images() { printf '%s\n' "$ZOOKEEPER_IMAGE"; }
