"""`interp envs show` and render_variant."""

from typer.testing import CliRunner

from cli import app


def test_show_writes_png(tmp_path):
    out = tmp_path / "c.png"
    res = CliRunner().invoke(app, ["envs", "show", "coinrun-permeable-wall", "--out", str(out),
                                   "--levels", "1", "--distribution-mode", "hard"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_show_bad_option_is_a_clean_error(tmp_path):
    res = CliRunner().invoke(app, ["envs", "show", "maze-cheese-region", "--out",
                                   str(tmp_path / "m.png"), "-o", "region_size=99"])
    assert res.exit_code == 2 and "region_size must be" in res.output
    assert "Traceback" not in res.output


def test_show_prints_the_path_it_wrote(tmp_path):
    """`--out out/noext` wrote noext.png and printed out/noext."""
    res = CliRunner().invoke(app, ["envs", "show", "maze", "--out", str(tmp_path / "noext"),
                                   "--levels", "1"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(tmp_path / "noext.png")
    assert (tmp_path / "noext.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "noext").exists()
