"""Running the command in-process and checking that bad input ends in one clear line, nothing more."""

from __future__ import annotations

from qonnx_spartan.cli import EXIT_USER_ERROR, main


def one_line_error(code: int, err: str) -> str:
    """The one `qonnx-spartan: error:` line of a user error (exit 2, no traceback)."""
    errors = [line for line in err.splitlines() if line.startswith("qonnx-spartan:")]
    assert code == EXIT_USER_ERROR, err
    assert len(errors) == 1 and errors[0].startswith("qonnx-spartan: error: "), err
    assert "Traceback" not in err
    return errors[0]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_error(capsys, *argv) -> str:
    """Run the command expecting a user error; its one line."""
    code, _, err = run_cli(capsys, *argv)
    return one_line_error(code, err)
