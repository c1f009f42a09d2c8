#!/bin/sh
# tests/pgcluster.sh -- a throw-away PostgreSQL cluster for the tests,
# from Debian's `postgresql` package: no system service, nothing outside
# DIR.  Used by tests/unit/test_store.c and test_store_durability.c (pgtest.h),
# tests/e2e/pgcluster.py and bench/postgres.
#
#   pgcluster.sh bindir              print the folder of initdb/pg_ctl, or
#                                    exit 77 when PostgreSQL is not installed
#   pgcluster.sh start DIR PORT      initdb DIR/data, start on 127.0.0.1:PORT
#                                    (superuser aced, trust auth, socket in DIR)
#   pgcluster.sh stop DIR [MODE]     pg_ctl stop (MODE fast|immediate)
#   pgcluster.sh restart DIR [MODE]  stop, then start again on the same port
#
# initdb refuses to run as root: as root, the server runs as user
# `postgres` (which the package creates) and DIR is given to it.
set -eu

bindir() {
  if [ -n "${ACED_PG_BINDIR:-}" ] && [ -x "$ACED_PG_BINDIR/initdb" ]; then
    echo "$ACED_PG_BINDIR"; return 0
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  d=$(command -v initdb 2>/dev/null || true)
  [ -n "$d" ] && { dirname "$d"; return 0; }
  return 77
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

server_start() {
  dir=$1
  port=$(cat "$dir/port")
  bin=$(bindir)
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c max_connections=300 -c shared_buffers=32MB" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}

cmd=${1:-}
case "$cmd" in
bindir)
  bindir || exit 77 ;;
start)
  dir=$2 port=$3
  mkdir -p "$dir"
  bin=$(bindir) || { echo "pgcluster: PostgreSQL not installed (Debian package postgresql)" >&2; exit 77; }
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U aced --auth=trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  echo "$port" >"$dir/port"
  server_start "$dir"
  ;;
stop)
  dir=$2 mode=${3:-fast}
  bin=$(bindir)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null 2>&1 || true
  ;;
restart)
  dir=$2 mode=${3:-fast}
  "$0" stop "$dir" "$mode"
  server_start "$dir"
  ;;
*)
  echo "usage: $0 bindir | start DIR PORT | stop DIR [MODE] | restart DIR [MODE]" >&2
  exit 2 ;;
esac
