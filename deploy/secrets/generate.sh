#!/usr/bin/env bash
# Writes the local secrets docker-compose.yml reads, once: a random password for
# RabbitMQ's `promsync` user and the broker URL that carries it. Both files are ignored
# by git; an existing file is kept, so running this again changes nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
umask 077
if [ ! -s rabbitmq_promsync_password ]; then
    # Hex: safe inside a URL without escaping.
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >rabbitmq_promsync_password
fi
if [ ! -s promsync.env ]; then
    printf 'PROMSYNC_BROKER_URL=amqp://promsync:%s@rabbitmq:5672/%%2f\n' \
        "$(cat rabbitmq_promsync_password)" >promsync.env
fi
echo "secrets in $(pwd): rabbitmq_promsync_password, promsync.env"
