"""An export policy that never announces IPv4 longer than /24 or IPv6
longer than /48 (a `PrefixGuard` resource may set `maxLengthV4` and
`maxLengthV6`). The Python twin of plugins/examples/prefix-guard, used by
the guest benchmarks (core/plugin-host/benches/guests.rs)."""

from starling_plugin import (
    ACCEPT, REJECT, AddressFamily, Direction, Refused, Role, export, problem, spec, verdicts,
)


class PrefixGuard:
    roles = [Role.ROUTE_POLICY]

    def __init__(self, objects):
        self.longest = {AddressFamily.IPV4: 24, AddressFamily.IPV6: 48}
        problems = []
        for obj in (o for o in objects if o.kind == "PrefixGuard"):
            guard = spec(obj)
            for key, family, width in (
                ("maxLengthV4", AddressFamily.IPV4, 32),
                ("maxLengthV6", AddressFamily.IPV6, 128),
            ):
                if key not in guard:
                    continue
                value = guard[key]
                if isinstance(value, int) and 0 <= value <= width:
                    self.longest[family] = value
                else:
                    problems.append(problem(obj, f"spec.{key}", f"must be a prefix length 0-{width}"))
        if problems:
            raise Refused(problems)

    def nodes(self):
        return []

    def evaluate(self, context, sets, routes):
        if context.direction != Direction.EXPORT:
            return verdicts([ACCEPT] * len(routes))
        longest = self.longest
        return verdicts(
            [REJECT if r.prefix.length > longest[r.prefix.family] else ACCEPT for r in routes]
        )


export(PrefixGuard)
