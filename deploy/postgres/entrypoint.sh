#!/bin/sh
# PostgreSQL for deploy/compose.yaml: on first start, a cluster in $PGDATA whose superuser is
# $POSTGRES_USER (password $POSTGRES_PASSWORD) owning database $POSTGRES_DB; then the server,
# as user postgres, listening on $POSTGRES_HOST:$POSTGRES_PORT (host networking: the address
# and port are the host's).
set -eu

: "${POSTGRES_USER:=receiver}" "${POSTGRES_DB:=receiver}" "${POSTGRES_HOST:=127.0.0.1}" "${POSTGRES_PORT:=5432}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "postgres-entrypoint: set POSTGRES_PASSWORD" >&2
  exit 1
fi
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  # Connections over TCP need the password; the local socket (inside this container only) does not.
  as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-host=scram-sha-256 --auth-local=trust >/dev/null
  rm -f "$pwfile"
  # Single-user mode creates the database without a server listening half-configured.
  echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" | as_postgres postgres --single -D "$PGDATA" -j postgres >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)" >&2
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
  postgres -D "$PGDATA" -c listen_addresses="$POSTGRES_HOST" -p "$POSTGRES_PORT" -c unix_socket_directories=/tmp "$@"
