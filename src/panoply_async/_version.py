# The one place the version is written. Hatch reads it into the distribution's
# metadata; the package's __version__, the SDK's `sdk` message attribute, the
# CLI's --version and the legacy compat layer all import it from here.
__version__ = "0.2.0"
