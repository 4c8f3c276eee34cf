# Stage "pulsar": Apache Pulsar brokers and the Apache BookKeeper bookies they
# store in. Neither is packaged by Debian, so the jars come from Maven Central
# (images/pulsar/pom.xml, versions from pins.env) on a Debian rootfs with the
# JRE. Both images share one jar layer (images/pulsar-lib): the bookies run the
# very BookKeeper the brokers' client is, and the layer is stored and pulled
# once. Each adds images/<name>/Dockerfile's launcher layer (cheap to rebuild).
# A third, on the bookies' image, lays the same jars out as Pulsar's own image
# does, for operators written against it (KAAP; images/pulsar-layout).

PULSAR_IMAGE=stateproof/pulsar:${PULSAR_VERSION%.*}
BOOKKEEPER_IMAGE=stateproof/bookkeeper:${BOOKKEEPER_VERSION%.*}
PULSAR_LAYOUT_IMAGE=stateproof/pulsar-layout:${PULSAR_VERSION%.*}
# shellcheck disable=SC2034 # listed by workload_images (workloads.sh)
PULSAR_IMAGES=("$BOOKKEEPER_IMAGE" "$PULSAR_IMAGE" "$PULSAR_LAYOUT_IMAGE")
# curl: the probes ask the servers' HTTP endpoints.
PULSAR_PACKAGES=$JRE_DEBIAN_PACKAGE,bash,procps,hostname,curl

stage_pulsar() {
  local base=stateproof/pulsar-packages:$DEBIAN_SUITE lib_image=stateproof/pulsar-lib:$PULSAR_VERSION
  local base_key libs_key lib_key lib=$CACHE/maven/pulsar/lib context
  base_key=$(cache_key pulsar-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$PULSAR_PACKAGES")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$PULSAR_PACKAGES"
  fi
  # workloads.sh holds maven_libs, which decides what gets resolved.
  libs_key=$(cache_key pulsar-libs "$REPO_DIR/images/pulsar/pom.xml" "$FORGE_DIR/workloads.sh" \
    "$PULSAR_VERSION" "$BOOKKEEPER_VERSION" "$PULSAR_STAND_IN_VERSION" "$MAVEN_DEPENDENCY_PLUGIN_VERSION")
  maven_libs pulsar "$libs_key" -Dpulsar.version="$PULSAR_VERSION" -Dbookkeeper.version="$BOOKKEEPER_VERSION" \
    -Dpulsar.stand-in.version="$PULSAR_STAND_IN_VERSION"
  check_pulsar_libs "$lib"

  lib_key=$(cache_key pulsar-lib "$base_key" "$libs_key" "$REPO_DIR/images/pulsar-lib" "$FORGE_DIR/pulsar.sh")
  if ! image_is_current "$lib_image" "$lib_key"; then
    context=$(context_with_libs pulsar-lib "$lib")
    build_image "$lib_image" "$context" "$lib_key" \
      "debian $DEBIAN_SUITE ($PULSAR_PACKAGES) from $DEBIAN_MIRROR; $(pulsar_lib_sources)" --build-arg "BASE=$base"
    rm -rf "$context"
  fi
  pulsar_launcher_image bookkeeper "$BOOKKEEPER_IMAGE" "$lib_image" "$lib_key"
  pulsar_launcher_image pulsar "$PULSAR_IMAGE" "$lib_image" "$lib_key"
  pulsar_launcher_image pulsar-layout "$PULSAR_LAYOUT_IMAGE" "$BOOKKEEPER_IMAGE" "$(launcher_key bookkeeper "$lib_key")"
}

pulsar_lib_sources() {
  echo "Maven Central: pulsar-broker, pulsar-client-tools, pulsar-testclient $PULSAR_VERSION" \
    "(pulsar-opentelemetry, jetcd-core-shaded $PULSAR_STAND_IN_VERSION), bookkeeper-server $BOOKKEEPER_VERSION" \
    "(images/pulsar/pom.xml)"
}

# One of the thin images, from images/<name>/Dockerfile on the image beneath
# it: $1 the images/ folder, $2 tag, $3/$4 the image beneath and its key.
pulsar_launcher_image() {
  local name=$1 tag=$2 lib_image=$3 lib_key=$4 key
  key=$(launcher_key "$name" "$lib_key")
  if ! image_is_current "$tag" "$key"; then
    build_image "$tag" "$REPO_DIR/images/$name" "$key" \
      "debian $DEBIAN_SUITE ($PULSAR_PACKAGES) from $DEBIAN_MIRROR; $(pulsar_lib_sources); images/$name" \
      --build-arg "LIB=$lib_image"
  fi
  publish_image "$tag"
}

launcher_key() {
  cache_key "$1" "$2" "$REPO_DIR/images/$1" "$FORGE_DIR/pulsar.sh"
}

# The pom takes BookKeeper's version from Pulsar's own pom; a pin that
# disagrees would have bookies of another version than the brokers' client.
check_pulsar_libs() {
  local lib=$1 jar found=()
  for jar in "pulsar-broker-$PULSAR_VERSION.jar" "pulsar-client-tools-$PULSAR_VERSION.jar" \
    "pulsar-testclient-$PULSAR_VERSION.jar" "vertx-http-server-$BOOKKEEPER_VERSION.jar" 'log4j-slf4j2-impl-*.jar' 'log4j-jul-*.jar'; do
    compgen -G "$lib/$jar" >/dev/null || die "$jar is missing from the resolved jars in $lib"
  done
  if [ ! -f "$lib/bookkeeper-server-$BOOKKEEPER_VERSION.jar" ]; then
    found=("$lib"/bookkeeper-server-*.jar)
    die "Pulsar $PULSAR_VERSION comes with ${found[*]##*/}, not BookKeeper $BOOKKEEPER_VERSION: fix BOOKKEEPER_VERSION in pins.env"
  fi
}
