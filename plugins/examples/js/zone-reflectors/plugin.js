// Nodes labelled `reflector: "true"` reflect routes for their `zone`, one
// cluster id per zone. The JavaScript twin of
// plugins/examples/zone-reflectors, the plugin docs/plugins.md builds (the
// same fixtures pass for both).

import { Role, exportPlugin, labels } from "./starling-plugin.js";

class ZoneReflectors {
  static roles = [Role.ROUTE_REFLECTION];

  constructor(objects) {
    this.zones = new Map(); // node -> zone
    for (const obj of objects) {
      const nodeLabels = labels(obj);
      if (obj.kind === "Node" && nodeLabels.reflector === "true" && "zone" in nodeLabels) {
        this.zones.set(obj.name, nodeLabels.zone);
      }
    }
  }

  nodes() {
    return [...this.zones.keys()].sort();
  }

  reflectors() {
    // One cluster id per zone, 244.0.<zone index>.1, zones numbered in the
    // order their first node comes.
    const ids = new Map();
    return this.nodes().map((node) => {
      const zone = this.zones.get(node);
      if (!ids.has(zone)) {
        ids.set(zone, ids.size);
      }
      return [node, `244.0.${ids.get(zone)}.1`];
    });
  }
}

exportPlugin(ZoneReflectors);
