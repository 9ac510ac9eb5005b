// Starling's policy plugins in JavaScript: the helpers an author imports.
//
// A plugin is a class registered with `exportPlugin`:
//
//     import { Role, exportPlugin, labels } from "./starling-plugin.js";
//
//     class ZoneReflectors {
//       static roles = [Role.ROUTE_REFLECTION];
//       constructor(objects) { ... }   // the snapshot; throw new Refused([...]) to refuse it
//       nodes() { ... }                // the nodes it plans for
//       reflectors() { ... }           // one method per role it fills
//     }
//     exportPlugin(ZoneReflectors);
//
// The methods per role (wit/starling-policy@0.3 says what each answers):
// assign(), reflectors(), identify(), plan(facts, nodes), originate(node),
// evaluate(context, sets, routes), inputs(contexts). Records are the
// contract's, with camelCase fields (session.peerIp); enums are strings
// ("ipv4"); u64 values are BigInts.
//
// `starling plugin build` puts this module, and the glue that turns the
// class into the component's exports (app.js), beside the author's
// plugin.js.

import { log as hostLog } from "starling:policy/log@0.3.0";

export const Role = Object.freeze({
  AS_ASSIGNMENT: "as-assignment",
  ROUTE_REFLECTION: "route-reflection",
  PEER_SELECTION: "peer-selection",
  ROUTE_POLICY: "route-policy",
  NODE_IDENTITY: "node-identity",
  ORIGINATION: "origination",
});

/** A route policy's verdicts: reject, accept unchanged, or accept with the
 * attributes `changed[n - 2]`. */
export const REJECT = 0;
export const ACCEPT = 1;

/** A route policy's answer: one of REJECT, ACCEPT or 2 + an index into
 * `changed` per route. */
export function verdicts(outcome, changed = []) {
  return { outcome, changed };
}

let exported = null;

/** Make `cls` the plugin. Call once, at the end of plugin.js. */
export function exportPlugin(cls) {
  exported = cls;
  return cls;
}

export function exportedPlugin() {
  if (exported === null) {
    throw new Error("plugin.js did not call exportPlugin(YourPlugin)");
  }
  return exported;
}

/** Thrown from the plugin's constructor: the snapshot is refused, with
 * these problems (each names a resource, a field and why). */
export class Refused extends Error {
  constructor(problems) {
    super(problems.map((p) => `${p.kind} '${p.name}', ${p.field}: ${p.reason}`).join("; "));
    this.problems = problems;
  }
}

/** A problem with `field` of the resource `obj`. */
export function problem(obj, field, reason) {
  return { kind: obj.kind, name: obj.name, field, reason };
}

/** The resource's labels as an object. */
export function labels(obj) {
  return Object.fromEntries(obj.labels);
}

/** The resource's spec as JavaScript values (it arrives as JSON). */
export function spec(obj) {
  return obj.spec ? JSON.parse(obj.spec) : {};
}

/** A line in the daemon's log under the plugin's name (console.log works
 * too, at info; console.error at warn). */
export function log(message, level = "info") {
  hostLog(level, String(message));
}

const SESSION_DEFAULTS = Object.freeze({
  extendedNextHop: false,
  origin: "plugin",
  peerPort: undefined,
  interface: undefined,
  sourceAddress: undefined,
  passive: false,
  rrClient: false,
  rrClusterId: undefined,
  password: undefined,
  gracefulRestartTime: undefined,
  keepaliveTime: undefined,
  ttlSecurity: undefined,
  nextHop: "auto",
  allowLocalAs: undefined,
  filters: [],
  reachableBy: undefined,
  bfd: undefined,
  errorWait: undefined,
  errorWaitLongest: undefined,
});

/** A session with the contract's defaults for every field not given (as
 * `Session::default()` in the Rust SDK). */
export function session({ name, peerIp, peerAs, localAs, family = "ipv4", ...fields }) {
  for (const key of Object.keys(fields)) {
    if (!(key in SESSION_DEFAULTS)) {
      throw new TypeError(`a session has no field ${key}`);
    }
  }
  return { ...SESSION_DEFAULTS, name, families: [family], peerIp, peerAs, localAs, ...fields };
}

/** One node's plan. */
export function nodePlan(node, { sessions = [], routerId, listenPort, listenAddresses = [], warnings = [] } = {}) {
  return { node, routerId, listenPort, listenAddresses, sessions, warnings };
}
