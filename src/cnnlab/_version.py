"""The package version, in a module of its own so that readers of it (checkpoint metadata) need not
import the whole package."""

__version__ = "0.1.0"
