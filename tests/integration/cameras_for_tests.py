"""Cameras used by the camera-mode tests."""

from evtools.snapshot import Polaroid


class BrokenCamera(Polaroid):
    """Raises in every picture and every cleanup."""

    def on_shutter(self, state):
        raise RuntimeError("the lens cap is on")

    def on_cleanup(self):
        raise RuntimeError("no cloth")


class NotACamera:
    """A class that is not a Polaroid."""


class WitnessCamera(Polaroid):
    """Writes, at each picture, the tasks it sees and what it was given (for evcam's tests)."""

    def on_shutter(self, state):
        import json
        import logging
        log = logging.getLogger("tests.witness")
        log.info("picture of %d tasks", len(state.tasks))
        log.debug("a debug line that loglevel INFO must hide")
        with open(self.options["out"], "w") as fh:
            json.dump({"tasks": sorted(state.tasks), "timer": self.timer.name,
                       "app": getattr(self.app, "main", None), "freq": self.freq}, fh)
