#!/bin/sh
# The image's entrypoint (under tini, which reaps every child and forwards signals).
#
# Started as root (the default): make the data directories writable by the
# receiver user (a bind-mounted host directory is usually owned by someone
# else), then drop to that user for good. Started with --user UID:GID: run as
# that user directly; the directories must then be writable by it.
set -eu

if [ "$(id -u)" = "0" ]; then
  user=receiver
  database="${RECEIVER_DATABASE:-/data/calls/receiver.db}"
  case "$database" in
    *://*) dirs="" ; database="" ;;  # a PostgreSQL URL: no file here
    *) dirs="$(dirname "$database")" ;;
  esac
  for dir in "${RECEIVER_RECORDINGS_DIR:-/data/recordings}" $dirs; do
    mkdir -p "$dir"
    # Only the directory itself (and the database files in it): a large recordings tree is
    # never walked, and files the receiver wrote before are its own already.
    if [ "$(stat -c %U "$dir")" != "$user" ]; then
      chown "$user:$user" "$dir"
    fi
  done
  if [ -n "$database" ]; then
    for file in "$database" "$database-wal" "$database-shm"; do
      if [ -e "$file" ] && [ "$(stat -c %U "$file")" != "$user" ]; then
        chown "$user:$user" "$file"
      fi
    done
  fi
  export HOME="/home/$user"
  exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
fi
exec "$@"
