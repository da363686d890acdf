#!/bin/sh
# Entrypoint of the Redis container (docker-compose and Helm): writes the ACL file from
# the role rules (deploy/redis-acl/acl-rules.conf, generated from
# modelguard.adapters.redis_acl) and one password file per role, mounted as secrets in
# $REDIS_SECRETS_DIR (redis-<role>), then runs the given command (ADR 0012).
# Passwords are stored as SHA-256 digests; the default (anonymous) user is disabled.
set -eu
RULES="${REDIS_ACL_RULES:-/etc/modelguard/redis/acl-rules.conf}"
SECRETS="${REDIS_SECRETS_DIR:-/run/secrets}"
ACL="${REDIS_ACL_FILE:-/tmp/modelguard-users.acl}"
umask 077
echo "user default off ~* &* +@all" > "$ACL"
grep -v '^#' "$RULES" | while read -r role rules; do
  [ -n "$role" ] || continue
  file="$SECRETS/redis-$role"
  if [ ! -s "$file" ]; then
    echo "render-acl: missing secret $file (Redis user $role)" >&2
    exit 1
  fi
  digest=$(head -n 1 "$file" | tr -d '\r\n' | sha256sum | cut -d' ' -f1)
  echo "user $role on #$digest $rules" >> "$ACL"
done
exec "$@" --aclfile "$ACL"
