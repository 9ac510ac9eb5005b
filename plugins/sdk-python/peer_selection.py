"""`peer-selection.facts`: what the host knows of each node. Generated
glue, shipped with Starling: not for editing."""

from wit_world.exports import peer_selection


class Facts(peer_selection.Facts):
    def __init__(self, facts):
        self.facts = list(facts)
