#!/bin/bash
# The probe operators written for Pulsar's image run: the local ZooKeeper
# answers ruok with imok.
set -uo pipefail
answer=$(exec 3<>/dev/tcp/127.0.0.1/2181 && printf ruok >&3 && timeout 5 cat <&3)
if [ "$answer" != imok ]; then
  echo "ZooKeeper on 127.0.0.1:2181 did not answer imok to ruok (answered '${answer}')" >&2
  exit 1
fi
