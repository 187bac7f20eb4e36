"""Exceptions a user of tetune can cause; each message names the tensor, stage or axis at fault."""


class TetuneError(Exception):
    """Base class of every error tetune raises on purpose."""


class TETypeError(TetuneError, TypeError):
    """Operands of mismatched or unsupported dtypes."""


class TEValueError(TetuneError, ValueError):
    """A malformed tensor expression (wrong number of indices, bad axis, bad shape)."""
