#!/usr/bin/env bash
# Start the local services the tests use (Redis, PostgreSQL, RabbitMQ) when they are installed
# but not running. Prints what it did; never fails the caller: tests report what is missing.
set -u

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 name=$2
    for _ in $(seq 1 60); do
        port_open "$port" && { echo "services: $name is up on $port"; return 0; }
        sleep 1
    done
    echo "services: $name did not come up on port $port"
}

if ! port_open 6379 && command -v redis-server >/dev/null; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_port 6379 Redis
fi
if ! port_open 5432 && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    wait_port 5432 PostgreSQL
fi
if ! port_open 5672 && command -v rabbitmq-server >/dev/null; then
    echo "services: starting RabbitMQ"
    rabbitmq-server -detached
    wait_port 5672 RabbitMQ
fi
exit 0
