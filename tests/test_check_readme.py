"""The README's "Check your own derivation" example is real output, re-run here."""

import re
from pathlib import Path

from verify._cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()
SECTION = README[README.index("## Check your own derivation"):]


def test_the_check_example_is_real_output(tmp_path, monkeypatch, capsys):
    notes = re.search(r"```markdown\n(.*?)```", SECTION, flags=re.S).group(1)
    session = re.search(r"```shell-session\n(.*?)```", SECTION, flags=re.S).group(1)
    command, *shown = session.rstrip("\n").split("\n")
    assert command == "$ softmax-ce check notes.md"
    (tmp_path / "notes.md").write_text(notes)
    monkeypatch.chdir(tmp_path)
    code = main(["check", "notes.md"])
    assert code == 1  # the example's last step drops a sign, on purpose
    assert capsys.readouterr().out.rstrip("\n").split("\n") == shown
