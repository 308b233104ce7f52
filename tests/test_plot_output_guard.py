"""`plot -o` never replaces an input or a file that is not a figure without --force (issue 18:
`plot FILE.h5 -o FILE.h5` overwrote the result file)."""

from helpers import config

from meanfield_pde import solve
from meanfield_pde.cli import main


def test_plot_refuses_inputs_and_foreign_files(tmp_path, capsys):
    res = tmp_path / "r.h5"
    solve(config("gaussians", "time.t_end=0.5", "time.n_outputs=6",
                 "lagrangian.mass_cells=10"), res)
    before = res.read_bytes()
    assert main(["plot", str(res), "-o", str(res)]) == 2  # the input (and no figure format)
    assert res.read_bytes() == before
    link = tmp_path / "same.png"
    link.symlink_to(res)
    assert main(["plot", str(res), "-o", str(link)]) == 2  # the input under another name
    assert res.read_bytes() == before
    foreign = tmp_path / "notes.png"
    foreign.write_text("not a figure")
    assert main(["plot", str(res), "-o", str(foreign)]) == 2
    assert foreign.read_text() == "not a figure"
    err = capsys.readouterr().err
    assert "--force" in err and all(line.startswith("meanfield-pde: error: ")
                                    for line in err.strip().splitlines())
    fig = tmp_path / "fig.png"
    assert main(["plot", str(res), "-o", str(fig)]) == 0
    assert main(["plot", str(res), "-o", str(fig)]) == 0  # a figure of ours: replaced
    assert main(["plot", str(res), "-o", str(foreign), "--force"]) == 0
    assert foreign.read_bytes().startswith(b"\x89PNG")
