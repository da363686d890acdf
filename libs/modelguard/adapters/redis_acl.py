"""Redis ACL users of modelguard: one user per role, each limited to the keys it writes.

The one home of the roles and their rules (ADR 0012). The local launcher
(``modelguard_devstack``) renders an ACL file from :func:`acl_file`; docker-compose and
Helm use the rules file ``deploy/redis-acl/acl-rules.conf`` written by :func:`rules_file`
(a unit test keeps it in sync), to which their entrypoint adds the passwords read from
mounted secret files.

Key patterns start with the deployment's Redis prefix (``*`` when one server hosts many
prefixes, as in the tests). Every role can ``PING``/``AUTH``/``HELLO``; ``@dangerous``
commands (``FLUSHALL``, ``CONFIG``, ``KEYS``, ``ACL``, ...) are only for ``admin``.

========== ===================================================================
role       may write (read: see ``READ_ALL``)
========== ===================================================================
admin      everything (operators' break-glass user, test fixtures, the demo)
operator   the CLI/API: routing tables and registered versions, controller
           freezes and audit, experiment registry, drift references
controller routing tables and registered versions, its lease, snapshot, audit
experiments experiment state (splits, partials, sequential, bandit, checkpoints)
           and routing tables (the bandit moves weights)
drift      drift references and checkpoints
router     nothing: reads routing tables and versions, subscribes to changes
========== ===================================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

#: Roles in a stable order (also the secret file names: ``redis-<role>``).
ROLES: tuple[str, ...] = ("admin", "operator", "controller", "experiments", "drift", "router")

#: Key suffixes (after ``<prefix>:``) written by the routing table writer (ADR 0006).
_ROUTING_WRITE = ("routing:*", "routing-audit", "routing-models", "routing-versions:*")
_CHANNELS_ROUTING = ("routing-changes",)
_EXPERIMENTS_WRITE = ("experiment:*", "experiments", "experiments:*")

#: Writable key suffixes per role (``admin`` is unrestricted).
WRITE_KEYS: Mapping[str, tuple[str, ...]] = {
    "operator": (*_ROUTING_WRITE, "control:*", *_EXPERIMENTS_WRITE, "drift:ref:*"),
    "controller": (*_ROUTING_WRITE, "lease:*", "control:*"),
    "experiments": (*_ROUTING_WRITE, *_EXPERIMENTS_WRITE, "expstate:*"),
    "drift": ("drift:*",),
    "router": (),
}

#: Pub/sub channels per role (suffixes); publishing and subscribing are both allowed.
CHANNELS: Mapping[str, tuple[str, ...]] = {
    "operator": (*_CHANNELS_ROUTING, "experiments:changes"),
    "controller": _CHANNELS_ROUTING,
    "experiments": (*_CHANNELS_ROUTING, "experiments:changes"),
    "drift": ("drift:*",),
    "router": _CHANNELS_ROUTING,
}

#: Readable keys: the router reads only routing keys; the others read every key.
READ_KEYS: Mapping[str, tuple[str, ...]] = {
    "router": ("routing:*", "routing-models", "routing-versions:*"),
}
READ_ALL = ("*",)

_WRITER_COMMANDS = "+@read +@write +@scripting +@transaction +@pubsub +@connection +@keyspace"
_READER_COMMANDS = "+@read +@connection +subscribe +unsubscribe +psubscribe +punsubscribe"


#: Disabled, but with the permissions the AOF replay needs (see :func:`acl_file`).
DEFAULT_USER = "user default off ~* &* +@all"


def rules(role: str, prefix: str = "*") -> str:
    """ACL rules of ``role`` (no ``user``/``on``/password), for keys under ``prefix``."""
    if role not in ROLES:
        raise ValueError(f"unknown Redis role {role!r}; choose from {', '.join(ROLES)}")
    if role == "admin":
        return "~* &* +@all"
    reads = READ_KEYS.get(role, READ_ALL)
    parts = ["resetkeys", "resetchannels", "-@all"]
    parts += [f"%R~{'*' if r == '*' else f'{prefix}:{r}'}" for r in reads]
    parts += [f"%RW~{prefix}:{w}" for w in WRITE_KEYS[role]]
    parts += [f"&{prefix}:{c}" for c in CHANNELS[role]]
    parts.append(_READER_COMMANDS if not WRITE_KEYS[role] else _WRITER_COMMANDS)
    parts.append("-@dangerous")
    return " ".join(parts)


def acl_file(passwords: Mapping[str, str], prefix: str = "*") -> str:
    """An ACL file: the default (anonymous) user off, one user per role in ``passwords``.

    Passwords are stored as SHA-256 digests (``#<hex>``), never in clear. The default
    user is ``off`` (no client can be it: anonymous clients get ``NOAUTH``) but keeps its
    permissions, because Redis 7.0 replays the append-only file's ``MULTI``/``EXEC``
    blocks (our Lua scripts' effects) under them: with ``-@all`` a restart silently
    dropped every scripted write (found by the controller's Redis outage test).
    """
    lines = [DEFAULT_USER]
    for role in ROLES:
        if role in passwords:
            digest = hashlib.sha256(passwords[role].encode()).hexdigest()
            lines.append(f"user {role} on #{digest} {rules(role, prefix)}")
    return "\n".join(lines) + "\n"


def rules_file(prefix: str = "modelguard") -> str:
    """``<role> <rules>`` per line, for entrypoints that add passwords from secret files."""
    head = (
        "# Generated by modelguard.adapters.redis_acl.rules_file(); do not edit.\n"
        "# One line per role: the entrypoint writes `user <role> on #<sha256 of the\n"
        "# password file> <rules>` and `user default off` (ADR 0012).\n"
    )
    return head + "".join(f"{role} {rules(role, prefix)}\n" for role in ROLES)
