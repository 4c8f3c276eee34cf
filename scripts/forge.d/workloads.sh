# Workload images: the systems the reference fixtures run. Each is a Debian
# root filesystem with the system's packages (cached by package list), plus a
# thin layer built from images/<name>/Dockerfile (cheap to rebuild), published
# to the local registry.

ZOOKEEPER_IMAGE=stateproof/zookeeper:3.8
ZOOKEEPER_PACKAGES=libzookeeper-java,libslf4j-java,liblog4j1.2-java,$JRE_DEBIAN_PACKAGE,netcat-openbsd,procps,bash,hostname

stage_zookeeper() {
  local base=stateproof/zookeeper-packages:3.8 base_key key context
  base_key=$(cache_key zookeeper-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$ZOOKEEPER_PACKAGES")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$ZOOKEEPER_PACKAGES"
  fi
  key=$(cache_key zookeeper "$base_key" "$REPO_DIR/images/zookeeper" "$FORGE_DIR/workloads.sh")
  if ! image_is_current "$ZOOKEEPER_IMAGE" "$key"; then
    build_image "$ZOOKEEPER_IMAGE" "$REPO_DIR/images/zookeeper" "$key" \
      "debian $DEBIAN_SUITE ($ZOOKEEPER_PACKAGES) from $DEBIAN_MIRROR; images/zookeeper" --build-arg "BASE=$base"
  fi
  publish_image "$ZOOKEEPER_IMAGE"
}

# A Dockerfile context of the repository's images/<name>/ with the resolved
# jars of `maven_libs` beside it, as lib/.
context_with_libs() {
  local name=$1 lib=$2 context=$CACHE/context/$1
  rm -rf "$context" && mkdir -p "$context"
  cp -r "$REPO_DIR/images/$name/." "$lib" "$context/"
  printf '%s' "$context"
}

# Resolves the runtime jars of images/<name>/pom.xml from Maven Central into
# $CACHE/maven/<name>/lib, once per key (the pom, the versions passed as -D
# properties). Maven's own repository under the cache keeps re-resolution
# after a pin change cheap.
maven_libs() {
  local name=$1 key=$2
  shift 2
  local out=$CACHE/maven/$name
  stamp_matches "maven-$name" "$key" && [ -d "$out/lib" ] && return 0
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  run_logged "resolving $name's jars from Maven Central" mvn -B -q -f "$REPO_DIR/images/$name/pom.xml" \
    -Dmaven.repo.local="$CACHE/m2" "$@" \
    "org.apache.maven.plugins:maven-dependency-plugin:$MAVEN_DEPENDENCY_PLUGIN_VERSION:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$out.tmp/lib"
  publish_dir "$out.tmp" "$out"
  write_stamp "maven-$name" "$key"
}

workload_images() { printf '%s\n' "$ZOOKEEPER_IMAGE" "$KAFKA_IMAGE" "${PULSAR_IMAGES[@]}" "$AUTOSCALER_IMAGE"; }
