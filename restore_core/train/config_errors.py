"""The error every config problem raises; its message names the key's path (``train.optim_g.lr``)."""


class ConfigError(ValueError):
    """A config problem; the message names the key's path (``train.optim_g.lr``)."""
