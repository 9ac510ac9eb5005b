"""Every rack its own AS; every node one eBGP session to its rack's
top-of-rack switch. The Python twin of plugins/examples/as-per-rack (the
same fixtures pass for both).

Reads Calico Nodes (the `rack` label, spec.bgp.ipv4Address/ipv6Address)
and its own kind Rack, named after the label:
`spec: {asNumber: 65101, torIP: 192.0.2.1, torASNumber: 65100}`.
A node without a rack label, or in a rack nobody defined, is refused:
better refused than silently unpeered.
"""

import ipaddress

from starling_plugin import (
    AddressFamily, Refused, Role, export, labels, node_plan, problem, session, spec,
)


def node_address(node_spec, key):
    """The address part of a Calico node address (`192.0.2.10/24`)."""
    text = node_spec.get("bgp", {}).get(key)
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.split("/")[0])
    except ValueError:
        return None


def parse_rack(obj):
    rack_spec = spec(obj)
    problems = []

    def number(key):
        value = rack_spec.get(key)
        if isinstance(value, int) and 0 <= value < 2**32:
            return value
        problems.append(problem(obj, f"spec.{key}", "needs an AS number"))

    try:
        tor = ipaddress.ip_address(rack_spec.get("torIP", ""))
    except ValueError:
        tor = None
        problems.append(problem(obj, "spec.torIP", "needs the ToR's IP address"))
    rack = {"as": number("asNumber"), "tor": tor, "tor_as": number("torASNumber")}
    return rack, problems[:1]


class AsPerRack:
    roles = [Role.AS_ASSIGNMENT, Role.PEER_SELECTION]

    def __init__(self, objects):
        problems = []
        self.racks = {}
        for obj in (o for o in objects if o.kind == "Rack"):
            rack, wrong = parse_rack(obj)
            problems += wrong
            if not wrong:
                self.racks[obj.name] = rack
        self.nodes_ = {}
        for obj in (o for o in objects if o.kind == "Node"):
            rack = labels(obj).get("rack")
            if rack is None:
                problems.append(problem(obj, "metadata.labels.rack", "every node needs a rack label"))
                continue
            if rack not in self.racks:
                problems.append(problem(obj, "metadata.labels.rack", f"no Rack named '{rack}'"))
                continue
            node_spec = spec(obj)
            self.nodes_[obj.name] = {
                "rack": rack,
                "v4": node_address(node_spec, "ipv4Address"),
                "v6": node_address(node_spec, "ipv6Address"),
            }
        if problems:
            raise Refused(problems)

    def nodes(self):
        return sorted(self.nodes_)

    def assign(self):
        return [(name, self.racks[n["rack"]]["as"]) for name, n in sorted(self.nodes_.items())]

    def plan(self, facts, nodes):
        local_as = {f.node: f.local_as for f in facts}
        plans = []
        for name in nodes:
            node = self.nodes_.get(name)
            if node is None:
                raise ValueError(f"no Node named '{name}'")
            rack = self.racks[node["rack"]]
            tor = rack["tor"]
            family = AddressFamily.IPV4 if tor.version == 4 else AddressFamily.IPV6
            mine = node["v4"] if tor.version == 4 else node["v6"]
            sessions = []
            if mine is not None:
                sessions.append(session(
                    name="Node_" + str(tor).replace(".", "_").replace(":", "_"),
                    family=family,
                    origin="rack",
                    peer_ip=str(tor),
                    peer_as=rack["tor_as"],
                    local_as=local_as.get(name, rack["as"]),
                    source_address=str(mine),
                    # The ToR is one hop away: GTSM costs nothing here.
                    ttl_security=1,
                ))
            router_id = str(node["v4"]) if node["v4"] else None
            plans.append(node_plan(name, router_id=router_id, sessions=sessions))
        return plans


export(AsPerRack)
