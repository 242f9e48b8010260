#!/usr/bin/env bash
# Make sure Postgres and Redis answer on 127.0.0.1 (the test defaults); start them if not.
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
STATE=${FINDAP_SERVICES_DIR:-/tmp/findap-services}

pg_up() { (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; }
redis_up() {
  (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
   printf 'PING\r\n' >&3; IFS= read -r -t 2 reply <&3; [[ "$reply" == +PONG* ]]) 2>/dev/null
}

install_packages() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
}

if ! pg_up; then
  echo "services: starting Postgres on 127.0.0.1:$PG_PORT"
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$bindir" ]; then install_packages postgresql; bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1); fi
  mkdir -p "$STATE" && chmod 755 "$STATE"
  if [ ! -f "$STATE/pg/PG_VERSION" ]; then
    mkdir -p "$STATE/pg" && chown postgres "$STATE/pg"
    runuser -u postgres -- "$bindir/initdb" -D "$STATE/pg" -A trust -U postgres >/dev/null
  fi
  runuser -u postgres -- "$bindir/pg_ctl" -D "$STATE/pg" -w -l "$STATE/pg.log" start \
    -o "-p $PG_PORT -k $STATE/pg -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null
fi

if ! redis_up; then
  echo "services: starting Redis on 127.0.0.1:$REDIS_PORT"
  command -v redis-server >/dev/null || install_packages redis-server
  redis-server --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --logfile "$STATE-redis.log"
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
fi
pg_up && redis_up && echo "services: Postgres and Redis are up"
