#!/bin/bash
# Operators written for Pulsar's image call this on RocksDB's ini file for
# images they take for Pulsar 4 or later (the name is theirs; this is a
# shell script). This image's bookies keep RocksDB's settings in
# conf/bookkeeper.conf, so a setting meant for the ini file is refused
# rather than silently dropped.
#   bin/update-ini-from-env.py FILE PREFIX
set -euo pipefail
prefix=${2:?usage: bin/update-ini-from-env.py FILE PREFIX}
given=$(compgen -e | grep "^$prefix" || true)
if [ -n "$given" ]; then
  echo "bin/update-ini-from-env.py: this image does not read $1; set instead in conf/bookkeeper.conf:" $given >&2
  exit 1
fi
