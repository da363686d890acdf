#!/bin/sh
# Creates the secret files docker-compose mounts (./secrets/...), each a random
# password, mode 0600; existing files are kept. Run once before `docker compose up`.
set -eu
cd "$(dirname "$0")/../.."
umask 077
mkdir -p secrets/redis secrets/grafana secrets/alertmanager
for f in redis/admin redis/operator redis/controller redis/experiments redis/drift \
         redis/router grafana/admin-password; do
  [ -s "secrets/$f" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "secrets/$f"
done
echo "secrets in $(pwd)/secrets (PagerDuty/Slack keys for Alertmanager: add them yourself)"
