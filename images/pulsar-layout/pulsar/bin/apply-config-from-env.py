#!/bin/bash
# Writes settings from the environment into key=value files, as operators
# written for Pulsar's image expect (the name is theirs; this is a shell
# script): a variable named like a key of the file, set or commented out,
# sets it; PULSAR_PREFIX_<key> (or --prefix P: P<key>) sets <key>, added
# when the file lacks it, and wins over the plain name. Values are trimmed.
#   bin/apply-config-from-env.py FILE... [--prefix P]
set -euo pipefail

prefix=PULSAR_PREFIX_
files=()
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -gt 0 ] || { echo "usage: bin/apply-config-from-env.py FILE... [--prefix P]" >&2; exit 2; }

for file in "${files[@]}"; do
  awk -v prefix="$prefix" '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    {
      lines[NR] = $0
      key = $0
      sub(/^#[ \t]*/, "", key)
      if (match(key, /^[A-Za-z0-9_.-]+=/)) { keyat[NR] = substr(key, 1, RLENGTH - 1); known[keyat[NR]] = 1 }
    }
    END {
      for (name in ENVIRON)
        if (index(name, prefix) == 1 && length(name) > length(prefix)) value[substr(name, length(prefix) + 1)] = ENVIRON[name]
      for (name in ENVIRON)
        if ((name in known) && !(name in value)) value[name] = ENVIRON[name]
      for (i = 1; i <= NR; i++) {
        key = keyat[i]
        if (key != "" && (key in value)) {
          if (!(key in written)) print key "=" trim(value[key])
          written[key] = 1
        } else {
          print lines[i]
        }
      }
      for (key in value)
        if (!(key in written)) print key "=" trim(value[key])
    }' "$file" >"$file.new"
  mv "$file.new" "$file"
done
