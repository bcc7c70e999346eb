from ptacl.cli.main import main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "usage: ptacl" in capsys.readouterr().out


def test_unknown_command_is_an_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err
