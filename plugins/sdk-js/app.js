// The component's exports, from the class plugin.js exported. Glue shipped
// with Starling: not for editing.

import "./plugin.js";
import { exportedPlugin, Refused } from "./starling-plugin.js";
import { log as hostLog } from "starling:policy/log@0.3.0";

function report(error) {
  hostLog("error", error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}

function call(model, method, ...args) {
  const impl = model.plugin[method];
  if (typeof impl !== "function") {
    throw new Error(`${model.plugin.constructor.name} has no ${method}()`);
  }
  try {
    return impl.apply(model.plugin, args);
  } catch (error) {
    report(error);
    throw error;
  }
}

/** For the calls whose answer is a result: an exception is its error. */
function callOrErr(model, method, ...args) {
  try {
    return [...model.plugin[method](...args)];
  } catch (error) {
    throw error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }
}

/** 64 bits of `text` (two FNV-1a hashes), the same in every run. */
function digest(text) {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
  }
  return (BigInt(a) << 32n) | BigInt(b);
}

/** What the route policy's verdicts depend on, when the plugin does not
 * say: the whole snapshot and the context (as the Rust SDK's default), so
 * any change re-evaluates every session. */
function defaultInputs(model, contexts) {
  if (model.digest === null) {
    model.digest = digest(JSON.stringify(model.objects));
  }
  return contexts.map((c) => {
    const d = digest(`${model.digest}|${JSON.stringify(c)}`);
    return [d, d];
  });
}

class Model {
  constructor(plugin, objects) {
    this.plugin = plugin;
    // Kept for the route-policy digest, computed if it is asked for.
    this.objects = objects;
    this.digest = null;
  }

  static load(objects) {
    const Plugin = exportedPlugin();
    try {
      return new Model(new Plugin(objects), objects);
    } catch (error) {
      if (error instanceof Refused) {
        throw error.problems;
      }
      report(error);
      throw error;
    }
  }

  nodes() {
    return [...this.plugin.nodes()];
  }
}

class Facts {
  constructor(facts) {
    this.facts = facts;
  }
}

export const snapshot = {
  roles() {
    return [...(exportedPlugin().roles ?? [])];
  },
  Model,
};

export const asAssignment = { assign: (m) => [...call(m, "assign")] };
export const routeReflection = { reflectors: (m) => [...call(m, "reflectors")] };
export const nodeIdentity = { identify: (m) => [...call(m, "identify")] };
export const peerSelection = {
  Facts,
  plan: (m, facts, nodes) => callOrErr(m, "plan", facts.facts, nodes),
};
export const origination = { originate: (m, node) => callOrErr(m, "originate", node) };
export const routePolicy = {
  evaluate: (m, context, sets, routes) => call(m, "evaluate", context, sets, routes),
  inputs: (m, contexts) =>
    typeof m.plugin.inputs === "function" ? [...call(m, "inputs", contexts)] : defaultInputs(m, contexts),
};
