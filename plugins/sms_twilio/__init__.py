"""Built-in plugin package `sms_twilio` (channel implementation lands with issue #5)."""

__version__ = "0.1.0"
