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

class Model {
  constructor(plugin) {
    this.plugin = plugin;
  }

  static load(objects) {
    const Plugin = exportedPlugin();
    try {
      return new Model(new Plugin(objects));
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
  inputs: (m, contexts) => [...call(m, "inputs", contexts)],
};
