#!/usr/bin/env bash
# A local stand-in for the `python:3.11-slim` base image, for machines that reach
# Debian's and PyPI's servers but no container registry (our CI): a Debian bookworm
# root (its python3 is 3.11) with a virtualenv on PATH, tagged python:3.11-slim, so
# the project's Dockerfile builds unchanged.
#
# The machine's CA bundle and resolv.conf go in, so apt and pip
# inside `docker build` reach the servers exactly as the machine does.
#
# Cached as a `docker save` tarball (DOCKER_BASE_CACHE, default
# ~/.cache/receiver/python-3.11-slim.tar): debootstrap runs once per machine.
#   scripts/docker-base.sh          # build or load it (no-op when the tag exists)
#   scripts/docker-base.sh --force  # build it again
set -euo pipefail

tag=python:3.11-slim
cache=${DOCKER_BASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/receiver/python-3.11-slim.tar}

# Like python:3.11-slim, the image has Python's headers: the Dockerfile's build stage compiles
# receiver/_native.pyx against them. An image or cache made before they were added is rebuilt.
has_headers() {
  docker run --rm --network none "$tag" python3 -c \
    "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
    >/dev/null 2>&1
}

if [ "${1:-}" != "--force" ]; then
  if docker image inspect "$tag" >/dev/null 2>&1 && has_headers; then
    echo "docker-base: $tag is present"
    exit 0
  fi
  if [ -s "$cache" ]; then
    docker load -i "$cache"
    if has_headers; then
      echo "docker-base: $tag loaded from $cache"
      exit 0
    fi
    echo "docker-base: $cache predates Python's headers: building it again"
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
echo "docker-base: debootstrap bookworm into $root"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,libpython3-dev,ca-certificates bookworm "$root" \
  >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log"; exit 1; }

# The machine's trust store (a proxy's CA included) and name server.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# What Debian's official images do (debuerreotype): apt keeps no package caches and no
# translations in any layer; lists, docs and man pages are left out.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*

tar -C "$root" -c . | docker import - receiver-base-rootfs:bookworm >/dev/null
cat >"$work/Dockerfile" <<'EOF'
FROM receiver-base-rootfs:bookworm
# python:3.11-slim's shape: `python` and `pip` on PATH, installing where root may write.
RUN python3 -m venv /usr/local/python && /usr/local/python/bin/pip --version
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
EOF
docker build --network host -q -t "$tag" "$work" >/dev/null
docker image rm receiver-base-rootfs:bookworm >/dev/null || true
mkdir -p "$(dirname "$cache")"
docker save -o "$cache" "$tag"
echo "docker-base: $tag built ($(docker image inspect -f '{{.Size}}' "$tag") bytes), cached in $cache"
