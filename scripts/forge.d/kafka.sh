# Stage "kafka": Apache Kafka in ZooKeeper mode. Debian has no Kafka package,
# so the jars come from Maven Central (images/kafka/pom.xml, versions from
# pins.env) on a Debian rootfs with the JRE, plus images/kafka/Dockerfile's
# layer of our launcher scripts (cheap to rebuild).

KAFKA_IMAGE=stateproof/kafka:3.9
KAFKA_PACKAGES=$JRE_DEBIAN_PACKAGE,bash,procps,hostname,netcat-openbsd

stage_kafka() {
  local base=stateproof/kafka-packages:3.9 base_key libs_key key context lib=$CACHE/maven/kafka/lib
  base_key=$(cache_key kafka-packages "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$KAFKA_PACKAGES")
  if ! image_is_current "$base" "$base_key"; then
    import_debian_rootfs "$base" "$base_key" "$KAFKA_PACKAGES"
  fi
  # workloads.sh holds maven_libs, which decides what gets resolved.
  libs_key=$(cache_key kafka-libs "$REPO_DIR/images/kafka/pom.xml" "$FORGE_DIR/workloads.sh" \
    "$KAFKA_VERSION" "$KAFKA_SCALA_VERSION" "$MAVEN_DEPENDENCY_PLUGIN_VERSION")
  maven_libs kafka "$libs_key" -Dkafka.version="$KAFKA_VERSION" -Dkafka.scala.version="$KAFKA_SCALA_VERSION"
  check_kafka_libs "$lib"
  key=$(cache_key kafka "$base_key" "$libs_key" "$REPO_DIR/images/kafka" "$FORGE_DIR/kafka.sh")
  if ! image_is_current "$KAFKA_IMAGE" "$key"; then
    context=$(context_with_libs kafka "$lib")
    build_image "$KAFKA_IMAGE" "$context" "$key" \
      "debian $DEBIAN_SUITE ($KAFKA_PACKAGES) from $DEBIAN_MIRROR; Maven Central: kafka_$KAFKA_SCALA_VERSION $KAFKA_VERSION, kafka-tools $KAFKA_VERSION (images/kafka/pom.xml); images/kafka" \
      --build-arg "BASE=$base"
    rm -rf "$context"
  fi
  publish_image "$KAFKA_IMAGE"
}

# The logging backend is no direct dependency of the pom but arrives with
# kafka-tools (slf4j-reload4j) and connect-runtime (reload4j), as in Apache's
# own distribution; without it the broker would log nothing at all.
check_kafka_libs() {
  local lib=$1 jar
  for jar in "kafka_$KAFKA_SCALA_VERSION-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" 'slf4j-reload4j-*.jar' 'reload4j-*.jar'; do
    compgen -G "$lib/$jar" >/dev/null || die "$jar is missing from the resolved jars in $lib"
  done
}
