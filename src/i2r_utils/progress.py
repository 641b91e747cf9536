"""Progress bars of the long loops: tqdm on a terminal, a few plain lines anywhere else.

``tqdm.auto`` picks the widget bar inside a Jupyter kernel; without ipywidgets (not a
dependency) it warns ``TqdmWarning: IProgress not found`` and falls back to the text bar,
which then writes a new output every 0.1 s: an executed notebook fills with dozens of
progress lines. :class:`tqdm` is the text bar throughout (no widget, no warning); where the
stream is not a terminal (a notebook's output, a log file) it updates at most every
:data:`QUIET_INTERVAL` seconds, so a loop leaves its first and last line and one line per
``QUIET_INTERVAL`` in between (a postfix, e.g. an epoch's loss, shows with the next
update instead of adding a line). Arguments given explicitly (``mininterval``,
``maxinterval``, ``disable``, ``refresh``) win.
"""

from __future__ import annotations

import sys

from tqdm.std import tqdm as _text_tqdm

__all__ = ["QUIET_INTERVAL", "tqdm"]

#: Seconds between two updates of a bar whose stream is not a terminal.
QUIET_INTERVAL = 30.0


def _is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False when it cannot tell)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class tqdm(_text_tqdm):  # noqa: N801 - a drop-in for tqdm.tqdm
    """``tqdm.std.tqdm`` with :data:`QUIET_INTERVAL` updates off a terminal.

    Parameters
    ----------
    iterable : iterable, optional
        As for tqdm.
    *args, **kwargs
        As for tqdm; ``file`` (default ``sys.stderr``) decides whether the bar is on a
        terminal.
    """

    def __init__(self, iterable=None, *args, **kwargs):
        self._on_terminal = _is_terminal(kwargs.get("file") or sys.stderr)
        if not self._on_terminal:
            kwargs.setdefault("mininterval", QUIET_INTERVAL)
            kwargs.setdefault("maxinterval", max(QUIET_INTERVAL, kwargs["mininterval"]))
        super().__init__(iterable, *args, **kwargs)

    def set_postfix(self, ordered_dict=None, refresh=None, **kwargs):
        """Set the postfix; off a terminal it shows at the next update (no extra line)."""
        refresh = self._on_terminal if refresh is None else refresh
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)
