"""progress.py: bars only on a terminal; a callable is told how much is done."""

from __future__ import annotations


def test_progress_bar_is_silent_off_a_terminal(capsys):
    from influence_patterns.progress import enabled, progress_bar

    assert enabled(None) is False  # pytest captures stderr: not a terminal
    assert enabled(True) and not enabled(False) and not enabled(print)
    with progress_bar(3, "work", None) as advance:
        advance(3)
    seen: list[int] = []
    with progress_bar(3, "work", seen.append) as advance:
        advance(2)
    assert seen == [2]
    assert capsys.readouterr().err == ""
