"""Nodes labelled `reflector: "true"` reflect routes for their `zone`, one
cluster id per zone. The Python twin of plugins/examples/zone-reflectors,
the plugin docs/plugins.md builds (the same fixtures pass for both)."""

from starling_plugin import Role, export, labels


class ZoneReflectors:
    roles = [Role.ROUTE_REFLECTION]

    def __init__(self, objects):
        self.zones = {}  # node -> zone
        for obj in objects:
            node_labels = labels(obj)
            if obj.kind == "Node" and node_labels.get("reflector") == "true" and "zone" in node_labels:
                self.zones[obj.name] = node_labels["zone"]

    def nodes(self):
        return sorted(self.zones)

    def reflectors(self):
        # One cluster id per zone, 244.0.<zone index>.1, zones numbered in
        # the order their first node comes.
        ids = {}
        return [
            (node, f"244.0.{ids.setdefault(zone, len(ids))}.1")
            for node, zone in sorted(self.zones.items())
        ]


export(ZoneReflectors)
