"""The component's exports, from the class plugin.py exported. Generated
glue, shipped with Starling: not for editing."""

import zlib

import plugin  # noqa: F401  (registers the plugin class)
import starling_plugin
import wit_world
from componentize_py_types import Err


def _digest(text):
    """64 bits of `text`, the same in every run (Python's hash() is not)."""
    data = text.encode()
    return (zlib.crc32(data) << 32) | zlib.crc32(data, 0x9E3779B9)


def _default_inputs(model, contexts):
    """What the route policy's verdicts depend on, when the plugin does not
    say: the whole snapshot and the context (as the Rust SDK's default), so
    any change re-evaluates every session."""
    if model.digest is None:
        model.digest = _digest(repr([(o.api_version, o.kind, o.name, o.labels, o.spec) for o in model.objects]))
    digests = []
    for c in contexts:
        d = _digest(f"{model.digest}|{c.node}|{c.session}|{c.family}|{c.direction}|{c.peer_as}|{c.local_as}|{c.filters}")
        digests.append((d, d))
    return digests


def _call(model, method, *args):
    """The plugin's `method`; an exception is logged with its traceback and
    traps (the host then serves the last good answer)."""
    impl = getattr(model.plugin, method, None)
    if impl is None:
        raise NotImplementedError(f"{type(model.plugin).__name__} has no {method}()")
    try:
        return impl(*args)
    except Exception:
        starling_plugin.report_exception()
        raise


def _call_or_err(model, method, *args):
    """As `_call`, for the calls whose answer is a result: an exception is
    their error."""
    try:
        return list(getattr(model.plugin, method)(*args))
    except Exception as e:
        raise Err(f"{type(e).__name__}: {e}")


class Snapshot(wit_world.exports.Snapshot):
    def roles(self):
        return list(getattr(starling_plugin.exported(), "roles", []))


class AsAssignment(wit_world.exports.AsAssignment):
    def assign(self, m):
        return list(_call(m, "assign"))


class RouteReflection(wit_world.exports.RouteReflection):
    def reflectors(self, m):
        return list(_call(m, "reflectors"))


class NodeIdentity(wit_world.exports.NodeIdentity):
    def identify(self, m):
        return list(_call(m, "identify"))


class PeerSelection(wit_world.exports.PeerSelection):
    def plan(self, m, facts, nodes):
        return _call_or_err(m, "plan", facts.facts, nodes)


class Origination(wit_world.exports.Origination):
    def originate(self, m, node):
        return _call_or_err(m, "originate", node)


class RoutePolicy(wit_world.exports.RoutePolicy):
    def evaluate(self, m, context, sets, routes):
        return _call(m, "evaluate", context, sets, routes)

    def inputs(self, m, contexts):
        if not hasattr(m.plugin, "inputs"):
            return _default_inputs(m, contexts)
        return list(_call(m, "inputs", contexts))
