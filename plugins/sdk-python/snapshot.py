"""`snapshot.model`: the plugin class, constructed from the resources.
Generated glue, shipped with Starling: not for editing."""

import starling_plugin
from componentize_py_types import Err
from wit_world.exports import snapshot


class Model(snapshot.Model):
    def __init__(self, plugin, objects):
        self.plugin = plugin
        # Kept for the route-policy digest, computed if it is asked for.
        self.objects = objects
        self.digest = None

    @classmethod
    def load(cls, objects):
        objects = list(objects)
        try:
            return cls(starling_plugin.exported()(objects), objects)
        except starling_plugin.Refused as refused:
            raise Err(refused.problems)
        except Exception:
            starling_plugin.report_exception()
            raise

    def nodes(self):
        return list(self.plugin.nodes())
