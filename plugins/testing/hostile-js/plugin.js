// The hostile test plugin (plugins/testing/hostile) in JavaScript:
// misbehaves as a `Hostile` resource's `spec.mode` says, in `assign`, so
// the sandbox is tested against a JS engine too. Without a mode it
// behaves: AS 65000 for every node.

import { Role, exportPlugin, spec } from "./starling-plugin.js";

function recurse(depth) {
  return recurse(depth + 1) + 1;
}

function misbehave(mode, nodes) {
  switch (mode) {
    case "loop": {
      let n = 0;
      for (;;) {
        n += 1;
      }
    }
    case "memory": {
      const hoard = [];
      for (;;) {
        hoard.push(new Uint8Array(1 << 20).fill(1));
      }
    }
    case "exception":
      throw new TypeError("hostile plugin asked to throw");
    case "stack":
      return [["", recurse(0)]];
    case "huge":
      return Array.from({ length: 2_000_000 }, (_, i) => [`node-${String(i).padStart(8, "0")}`, i]);
    case "print-flood":
      for (let i = 0; i < 2_000; i++) {
        console.log(`hello from the sandbox ${i}`);
      }
      return nodes.map((n) => [n, 65000]);
    case "clock":
      return [[String(Date.now()), 1]];
    default:
      return null;
  }
}

class Hostile {
  static roles = [Role.AS_ASSIGNMENT];

  constructor(objects) {
    this.mode = "";
    this.nodeNames = objects.filter((o) => o.kind === "Node").map((o) => o.name).sort();
    for (const o of objects) {
      if (o.kind === "Hostile") {
        this.mode = spec(o).mode ?? "";
      }
    }
  }

  nodes() {
    return this.nodeNames;
  }

  assign() {
    return misbehave(this.mode, this.nodeNames) ?? this.nodeNames.map((n) => [n, 65000]);
  }
}

exportPlugin(Hostile);
