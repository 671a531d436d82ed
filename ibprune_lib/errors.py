"""``OptionError``: a bad value of an option the caller passed, worded in the caller's own names.

The library names its options as Python parameters ("target_flops must be a keep ratio in (0, 1]"); the
command line names the same options as flags ("--target-flops must be ..."). An ``OptionError``'s message is a
template whose option names stand in braces, ``"{target_flops} must be a keep ratio in (0, 1]"``: ``str()`` gives
the Python names, :meth:`OptionError.worded` whatever names the caller uses.
"""

from __future__ import annotations

from string import Formatter


class OptionError(ValueError):
    """A bad value of a named option.

    Args:
        template: the message, each option name in braces (literal braces doubled, as in ``str.format``).
    """

    def __init__(self, template: str):
        self.template = template
        super().__init__(self.worded({}))

    def worded(self, names: dict[str, str]) -> str:
        """The message with each option in braces shown as ``names[option]``, or as itself when not named."""
        parts = []
        for literal, field, _, _ in Formatter().parse(self.template):
            parts.append(literal)
            if field is not None:
                parts.append(names.get(field, field))
        return "".join(parts)
