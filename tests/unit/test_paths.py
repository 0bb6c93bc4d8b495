"""Paths starting with '~': a user this machine does not know, or no home folder at all, gives
a 'not found' sentence or one that says why, never a traceback (studio.paths.expand_user)."""

import pwd

import pytest

from studio import paths, prefetch
from studio.cli import main
from studio.errors import UserError

NO_USER = "~no_such_user_4f2a"  # '~name' for a user no machine here has


def test_a_known_home_expands(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.expand_user("~/data.json") == tmp_path / "data.json"
    assert paths.expand_user("/abs/x") == paths.Path("/abs/x")


def test_an_unknown_user_stays_as_written_or_is_one_sentence():
    assert str(paths.expand_user(f"{NO_USER}/x")) == f"{NO_USER}/x"
    assert paths.resolve_model_path(f"{NO_USER}/m") == f"{NO_USER}/m"  # then 'not found' applies
    assert paths.resolve_data_path(f"{NO_USER}/d.json") == f"{NO_USER}/d.json"
    with pytest.raises(UserError) as caught:
        paths.expand_user(f"{NO_USER}/out", strict=True)  # a folder the studio would create
    assert caught.value.msg.code == "security.no_home_folder"
    assert f"'{NO_USER}'" in str(caught.value) and "full path" in str(caught.value)


@pytest.mark.parametrize("setting, fragment", [
    (f"model.path={NO_USER}/x", f"Model folder not found: {NO_USER}/x"),
    (f"data.path={NO_USER}/x.json", f"'{NO_USER}/x.json' is neither a file"),
])
def test_train_with_an_unknown_user_path_is_one_line(home, capsys, setting, fragment):
    assert main(["train", setting, "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1
    assert not list((home / "runs").glob("*"))


def test_a_home_under_an_unknown_user_is_refused_not_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "--home", f"{NO_USER}/studio"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot tell which folder") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())  # no literal '~no_such_user…' folder in the current one


def test_no_home_folder_at_all(monkeypatch, tmp_path, capsys):
    """No $HOME and no passwd entry (a container run as an arbitrary uid)."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("STUDIO_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_entry(uid):
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(RuntimeError):
        paths.Path.home()  # what Python itself does here
    assert main(["runs"]) == 2
    assert "choose a folder with --home or STUDIO_HOME" in capsys.readouterr().err
    assert main(["runs", "--json", "--home", str(tmp_path / "h")]) == 0  # an explicit home works
    # the read-ahead list lives under ~/.cache: without a home there is none, and nothing fails
    assert prefetch.list_path() is None and prefetch.recorded() == []
    prefetch.record()
