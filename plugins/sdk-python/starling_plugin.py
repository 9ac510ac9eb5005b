"""Starling's policy plugins in Python: the helpers an author imports.

A plugin is a class registered with `export`:

    from starling_plugin import Role, export

    class ZoneReflectors:
        roles = [Role.ROUTE_REFLECTION]

        def __init__(self, objects):   # the snapshot; raise Refused to refuse it
            ...
        def nodes(self):               # the nodes it plans for
            ...
        def reflectors(self):          # one method per role it fills
            ...

    export(ZoneReflectors)

The methods per role (the contract, wit/starling-policy@0.3, says what
each answers): `assign()` for AS assignment, `reflectors()` for route
reflection, `identify()` for node identity, `plan(facts, nodes)` for
peer selection, `originate(node)` for origination, `evaluate(context,
sets, routes)` and `inputs(contexts)` for route policy.

`starling plugin build` puts this module, and the glue that turns the
class into the component's exports (`app.py`, `snapshot.py`,
`peer_selection.py`), beside the author's `plugin.py`.
"""

# Imported here, not where used: componentize-py bundles the modules that
# are imported when it builds the component, and no others.
import json
import sys
import traceback

from wit_world.exports import route_policy as _route_policy
from wit_world.exports.snapshot import Role
from wit_world.imports import log as _log
from wit_world.imports import types as _types

AddressFamily = _types.AddressFamily
NextHopMode = _types.NextHopMode
Object = _types.Object
NodePlan = _types.NodePlan
NodeFacts = _types.NodeFacts
Problem = _types.Problem
Session = _types.Session
SecretRef = _types.SecretRef
Direction = _route_policy.Direction

# A route policy's verdicts: reject, accept unchanged, or accept with the
# attributes `changed[n - 2]`.
REJECT = 0
ACCEPT = 1

__all__ = [
    "ACCEPT", "REJECT", "AddressFamily", "Direction", "NextHopMode", "NodePlan", "NodeFacts", "Object", "Problem",
    "Refused", "Role", "Session", "export", "labels", "log", "node_plan", "problem",
    "session", "spec", "verdicts",
]

_exported = None


def export(cls):
    """Make `cls` the plugin. Call once, at the end of plugin.py."""
    global _exported
    _exported = cls
    return cls


def exported():
    if _exported is None:
        raise RuntimeError("plugin.py did not call starling_plugin.export(YourPlugin)")
    return _exported


class Refused(Exception):
    """Raised from the plugin's constructor: the snapshot is refused, with
    these problems (each names a resource, a field and why)."""

    def __init__(self, problems):
        super().__init__("; ".join(f"{p.kind} '{p.name}', {p.field}: {p.reason}" for p in problems))
        self.problems = list(problems)


def report_exception():
    """The exception being handled, logged as an error: the host shows it
    with the trap that follows (the interpreter prints the traceback to
    stderr, which is the plugin's log too)."""
    kind, value, _ = sys.exc_info()
    if kind is not None:
        _log.log(_log.Level.ERROR, "".join(traceback.format_exception_only(kind, value)).strip())


def problem(obj, field, reason):
    """A problem with `field` of the resource `obj`."""
    return Problem(kind=obj.kind, name=obj.name, field=field, reason=reason)


def labels(obj):
    """The resource's labels as a dict."""
    return dict(obj.labels)


def spec(obj):
    """The resource's spec as Python values (it arrives as JSON)."""
    return json.loads(obj.spec) if obj.spec else {}


def log(message, level="info"):
    """A line in the daemon's log under the plugin's name (print works too,
    at info; stderr at warn)."""
    _log.log(getattr(_log.Level, level.upper()), str(message))


def session(*, name, peer_ip, peer_as, local_as, family=AddressFamily.IPV4, origin="plugin", **fields):
    """A session with the contract's defaults for every field not given
    (as `Session::default()` in the Rust SDK)."""
    values = dict(
        name=name, families=[family], extended_next_hop=False, origin=origin,
        peer_ip=peer_ip, peer_port=None, interface=None, peer_as=peer_as,
        local_as=local_as, source_address=None, passive=False, rr_client=False,
        rr_cluster_id=None, password=None, graceful_restart_time=None,
        keepalive_time=None, ttl_security=None, next_hop=NextHopMode.AUTO,
        allow_local_as=None, filters=[], reachable_by=None, bfd=None,
        error_wait=None, error_wait_longest=None,
    )
    unknown = set(fields) - set(values)
    if unknown:
        raise TypeError(f"a session has no field {', '.join(sorted(unknown))}")
    values.update(fields)
    return Session(**values)


def verdicts(outcome, changed=()):
    """A route policy's answer: one of REJECT, ACCEPT or 2 + an index into
    `changed` per route."""
    return _route_policy.Verdicts(outcome=list(outcome), changed=list(changed))


def node_plan(node, *, sessions=(), router_id=None, listen_port=None, listen_addresses=(), warnings=()):
    """One node's plan."""
    return NodePlan(
        node=node, router_id=router_id, listen_port=listen_port,
        listen_addresses=list(listen_addresses), sessions=list(sessions),
        warnings=list(warnings),
    )
