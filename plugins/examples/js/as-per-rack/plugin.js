// Every rack its own AS; every node one eBGP session to its rack's
// top-of-rack switch. The JavaScript twin of plugins/examples/as-per-rack
// (the same fixtures pass for both).
//
// Reads Calico Nodes (the `rack` label, spec.bgp.ipv4Address/ipv6Address)
// and its own kind Rack, named after the label:
// `spec: {asNumber: 65101, torIP: 192.0.2.1, torASNumber: 65100}`.
// A node without a rack label, or in a rack nobody defined, is refused:
// better refused than silently unpeered.

import {
  Refused, Role, exportPlugin, labels, nodePlan, problem, session, spec,
} from "./starling-plugin.js";

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The family of an address, or null when it is not one. */
function family(address) {
  if (typeof address !== "string") {
    return null;
  }
  const v4 = IPV4.exec(address);
  if (v4) {
    return v4.slice(1).every((octet) => Number(octet) <= 255) ? "ipv4" : null;
  }
  return /^[0-9a-fA-F:]+$/.test(address) && address.includes(":") ? "ipv6" : null;
}

/** The address part of a Calico node address (`192.0.2.10/24`). */
function nodeAddress(nodeSpec, key) {
  const text = nodeSpec.bgp?.[key];
  const address = typeof text === "string" ? text.split("/")[0] : null;
  return family(address) ? address : null;
}

function parseRack(obj) {
  const rackSpec = spec(obj);
  const number = (key) => {
    const value = rackSpec[key];
    return Number.isInteger(value) && value >= 0 && value < 2 ** 32 ? value : null;
  };
  const rack = { as: number("asNumber"), tor: rackSpec.torIP, torAs: number("torASNumber") };
  if (rack.as === null) {
    return [null, problem(obj, "spec.asNumber", "needs an AS number")];
  }
  if (!family(rack.tor)) {
    return [null, problem(obj, "spec.torIP", "needs the ToR's IP address")];
  }
  if (rack.torAs === null) {
    return [null, problem(obj, "spec.torASNumber", "needs an AS number")];
  }
  return [rack, null];
}

class AsPerRack {
  static roles = [Role.AS_ASSIGNMENT, Role.PEER_SELECTION];

  constructor(objects) {
    const problems = [];
    this.racks = new Map();
    for (const obj of objects.filter((o) => o.kind === "Rack")) {
      const [rack, wrong] = parseRack(obj);
      if (wrong) {
        problems.push(wrong);
      } else {
        this.racks.set(obj.name, rack);
      }
    }
    this.nodeMap = new Map();
    for (const obj of objects.filter((o) => o.kind === "Node")) {
      const rack = labels(obj).rack;
      if (rack === undefined) {
        problems.push(problem(obj, "metadata.labels.rack", "every node needs a rack label"));
        continue;
      }
      if (!this.racks.has(rack)) {
        problems.push(problem(obj, "metadata.labels.rack", `no Rack named '${rack}'`));
        continue;
      }
      const nodeSpec = spec(obj);
      this.nodeMap.set(obj.name, {
        rack,
        v4: nodeAddress(nodeSpec, "ipv4Address"),
        v6: nodeAddress(nodeSpec, "ipv6Address"),
      });
    }
    if (problems.length > 0) {
      throw new Refused(problems);
    }
  }

  nodes() {
    return [...this.nodeMap.keys()].sort();
  }

  assign() {
    return this.nodes().map((name) => [name, this.racks.get(this.nodeMap.get(name).rack).as]);
  }

  plan(facts, nodes) {
    const localAs = new Map(facts.map((f) => [f.node, f.localAs]));
    return nodes.map((name) => {
      const node = this.nodeMap.get(name);
      if (node === undefined) {
        throw new Error(`no Node named '${name}'`);
      }
      const rack = this.racks.get(node.rack);
      const torFamily = family(rack.tor);
      const mine = torFamily === "ipv4" ? node.v4 : node.v6;
      const sessions = [];
      if (mine !== null) {
        sessions.push(session({
          name: `Node_${rack.tor.replaceAll(/[.:]/g, "_")}`,
          family: torFamily,
          origin: "rack",
          peerIp: rack.tor,
          peerAs: rack.torAs,
          localAs: localAs.get(name) ?? rack.as,
          sourceAddress: mine,
          // The ToR is one hop away: GTSM costs nothing here.
          ttlSecurity: 1,
        }));
      }
      return nodePlan(name, { sessions, routerId: node.v4 ?? undefined });
    });
  }
}

exportPlugin(AsPerRack);
