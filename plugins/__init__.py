"""Nudge's own plugins. They use exactly the hooks a third-party plugin uses."""
