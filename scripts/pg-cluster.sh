#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, CI and benchmarks.
#
#   scripts/pg-cluster.sh start <dir>          initdb into <dir> (when new) and start the server; prints its URL
#   scripts/pg-cluster.sh stop <dir> [--keep]  stop the server and remove <dir> (--keep: keep it, to start again)
#   scripts/pg-cluster.sh url <dir>            print the URL of the cluster in <dir>
#
# The server listens on a free port of 127.0.0.1 (the same port again when <dir> is started again),
# trusts local connections, and commits durably (fsync and synchronous_commit on). It also listens on
# the addresses in HOLDOUT_PG_LISTEN (comma-separated, e.g. "127.0.0.1,10.77.0.1"), trusting each
# one's /24. PostgreSQL's programs are taken from PG_BIN, or the newest /usr/lib/postgresql/*/bin.
# Run as root, the cluster belongs to the user postgres. The URL is also written to <dir>/url.
set -euo pipefail

usage() {
  echo "usage: $0 start <dir> | stop <dir> [--keep] | url <dir>" >&2
  exit 2
}

[ $# -ge 2 ] || usage
command=$1
dir=$2

bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin): install it (apt-get install postgresql) or set PG_BIN." >&2
  exit 1
fi

# runs a PostgreSQL program as the cluster's owner
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}

case "$command" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      [ "$(id -u)" = 0 ] && chown postgres "$dir"
      as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log"
      port=$(free_port)
      listen=${HOLDOUT_PG_LISTEN:-127.0.0.1}
      case ",$listen," in *,127.0.0.1,*) ;; *) listen="127.0.0.1,$listen" ;; esac
      {
        echo "listen_addresses = '$listen'"
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "fsync = on"
        echo "synchronous_commit = on"
        echo "max_connections = 300"
      } | as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
      IFS=, read -ra addresses <<<"$listen"
      for address in "${addresses[@]}"; do
        [ "$address" = 127.0.0.1 ] && continue
        echo "host all all ${address%.*}.0/24 trust" | as_owner tee -a "$dir/data/pg_hba.conf" >/dev/null
      done
      echo "postgres://postgres@127.0.0.1:$port/postgres" >"$dir/url"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 start >/dev/null
    cat "$dir/url"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    [ "${3:-}" = --keep ] || rm -rf "$dir"
    ;;
  url)
    cat "$dir/url"
    ;;
  *)
    usage
    ;;
esac
