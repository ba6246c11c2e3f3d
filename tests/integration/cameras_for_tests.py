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
