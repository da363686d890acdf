"""The README's main job: start the local stack and show the modelguard loop working."""
