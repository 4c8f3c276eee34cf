#!/bin/bash
# Adds the ensemble to a ZooKeeper configuration, as operators written for
# Pulsar's image expect: ZOOKEEPER_SERVERS lists the members' pod names, in
# order (member N+1 is server.N+1), in this pod's DNS domain; this pod's
# place becomes its myid, kept in dataDir (on its volume) once written.
# Earlier server lines go first: a restarted container runs this again.
#   bin/generate-zookeeper-config.sh FILE
set -euo pipefail
conf=${1:?usage: bin/generate-zookeeper-config.sh FILE}
: "${ZOOKEEPER_SERVERS:?bin/generate-zookeeper-config.sh: ZOOKEEPER_SERVERS lists no member}"
domain=$(hostname -d)
me=${HOSTNAME:-$(hostname)}

sed -i '/^server\.[0-9]*=/d' "$conf"
IFS=, read -ra members <<<"$ZOOKEEPER_SERVERS"
id=0 myid=
for member in "${members[@]}"; do
  id=$((id + 1))
  echo "server.$id=$member.$domain:2888:3888" >>"$conf"
  [ "$member" != "$me" ] || myid=$id
done

if [ -n "$myid" ]; then
  data_dir=$(sed -n 's/^dataDir=//p' "$conf" | tail -n 1)
  mkdir -p "$data_dir"
  [ -s "$data_dir/myid" ] || echo "$myid" >"$data_dir/myid"
fi
