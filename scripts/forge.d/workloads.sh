# Workload images: the systems the reference fixtures run. Each is a Debian
# root filesystem with the system's packages (cached by package list), plus a
# thin layer built from images/<name>/Dockerfile (cheap to rebuild), published
# to the local registry.

ZOOKEEPER_IMAGE=stateproof/zookeeper:3.8
ZOOKEEPER_PACKAGES=libzookeeper-java,libslf4j-java,liblog4j1.2-java,$JRE_DEBIAN_PACKAGE,netcat-openbsd,procps,bash,hostname

stage_zookeeper() {
  packaged_image zookeeper "$ZOOKEEPER_IMAGE" stateproof/zookeeper-packages:3.8 "$ZOOKEEPER_PACKAGES" \
    "$FORGE_DIR/workloads.sh"
}

# NAME IMAGE BASE PACKAGES RECIPE: IMAGE from images/NAME/Dockerfile on BASE,
# a Debian root filesystem with PACKAGES (cached by package list); RECIPE is
# the stage's script, part of the key. Published to the local registry.
packaged_image() {
  local name=$1 image=$2 base=$3 packages=$4 recipe=$5 base_key key
  base_key=$(cache_key "$name-packages" "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$packages")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$packages"
  fi
  key=$(cache_key "$name" "$base_key" "$REPO_DIR/images/$name" "$recipe")
  if ! image_is_current "$image" "$key"; then
    build_image "$image" "$REPO_DIR/images/$name" "$key" \
      "debian $DEBIAN_SUITE ($packages) from $DEBIAN_MIRROR; images/$name" --build-arg "BASE=$base"
  fi
  publish_image "$image"
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
