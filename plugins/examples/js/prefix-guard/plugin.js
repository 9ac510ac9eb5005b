// An export policy that never announces IPv4 longer than /24 or IPv6
// longer than /48 (a `PrefixGuard` resource may set `maxLengthV4` and
// `maxLengthV6`). The JavaScript twin of plugins/examples/prefix-guard,
// used by the guest benchmarks (core/plugin-host/benches/guests.rs).

import { ACCEPT, REJECT, Refused, Role, exportPlugin, problem, spec, verdicts } from "./starling-plugin.js";

class PrefixGuard {
  static roles = [Role.ROUTE_POLICY];

  constructor(objects) {
    this.longest = { ipv4: 24, ipv6: 48 };
    const problems = [];
    for (const obj of objects.filter((o) => o.kind === "PrefixGuard")) {
      const guard = spec(obj);
      for (const [key, family, width] of [["maxLengthV4", "ipv4", 32], ["maxLengthV6", "ipv6", 128]]) {
        if (!(key in guard)) {
          continue;
        }
        const value = guard[key];
        if (Number.isInteger(value) && value >= 0 && value <= width) {
          this.longest[family] = value;
        } else {
          problems.push(problem(obj, `spec.${key}`, `must be a prefix length 0-${width}`));
        }
      }
    }
    if (problems.length > 0) {
      throw new Refused(problems);
    }
  }

  nodes() {
    return [];
  }

  evaluate(context, sets, routes) {
    if (context.direction !== "export") {
      return verdicts(routes.map(() => ACCEPT));
    }
    return verdicts(routes.map((r) => (r.prefix.length > this.longest[r.prefix.family] ? REJECT : ACCEPT)));
  }
}

exportPlugin(PrefixGuard);
