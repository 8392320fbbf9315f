"""The report stage and --show, on a tiny end-to-end run; the page in headless Chromium."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import run_pipeline
from pipeline.config import load_config
from pipeline.datasets.prepared import PreparedDataset
from pipeline.runner import Pipeline
from stages import STAGES
from tests.conftest import TINY_CONFIG, TINY_TRAIN

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reported")
    Pipeline(STAGES, load_config(TINY_CONFIG), run_dir).run([s.name for s in STAGES])
    return run_dir


def referenced_files(html_path):
    html = html_path.read_text()
    return re.findall(r'(?:src|href)="([^"#:]+)"', html)


def test_report_shows_every_part_and_every_image_it_refers_to_exists(reported_run):
    page = reported_run / "report" / "index.html"
    html = page.read_text()
    for part in ("Stages", "mIoU chain", "Per-class IoU", "Background threshold sweep", "best", "worst", "random",
                 "Segmenter on 'val'", "The pseudo-mask data set", "train_segmenter", "Premise check"):
        assert part in html, part
    files = referenced_files(page)
    assert len([f for f in files if f.endswith(".png")]) >= 1 + 2 * 3  # sweep + two galleries of 3 kinds
    for ref in files:
        assert (page.parent / ref).is_file(), ref
    m = json.loads((reported_run / "report" / "manifest.json").read_text())
    assert set(m["upstream"]) >= {"refine_masks", "evaluate_segmenter", "check_premise"}  # optional ones, used when done


def test_report_explains_itself(reported_run):
    """The elements a reader needs, found by parsing the page: the rank correlation with a
    sentence on its meaning, the colour bar of the heat maps, the total time, the package
    versions, the code digests, and gallery headings that say what ranks them."""
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.classes, self.h3, self.text, self._in = [], [], [], None

        def handle_starttag(self, tag, attrs):
            self.classes += [v for k, v in attrs if k == "class"]
            self._in = tag

        def handle_data(self, data):
            self.text.append(data)
            if self._in == "h3":
                self.h3.append(data)

    page = Page()
    page.feed((reported_run / "report" / "index.html").read_text())
    text = re.sub(r"\s+", " ", " ".join(page.text))
    rho = json.loads((reported_run / "refine_masks" / "manifest.json").read_text())["metrics"]
    assert f"Quality rank correlation: {rho['quality_rank_correlation']:+.2f}" in text
    assert "near +1, the score finds the worst masks without GT" in text
    assert "colorbar" in page.classes and "rank" in page.classes
    assert re.search(r"Total time of the stages: \d+\.\d min", text) and "torch " in text and "mmseg " in text
    digest = json.loads((reported_run / "export_maps" / "manifest.json").read_text())["code_digest"]
    assert digest in text
    assert "best: the 4 highest by per-image mIoU against GT" in page.h3
    assert "worst: the 4 lowest by per-image mIoU against GT" in page.h3
    assert any(h.startswith("random: 4 drawn at random") for h in page.h3)


def test_the_sweep_plot_labels_the_chosen_and_the_oracle_threshold(tmp_path, monkeypatch):
    """The legend names the run, the chosen t with its value and the oracle t with its value."""
    import matplotlib.axes

    from pipeline.report.plots import sweep_plot

    labels = []
    original = matplotlib.axes.Axes.legend
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda ax, *a, **k: (
        labels.extend(ax.get_legend_handles_labels()[1]), original(ax, *a, **k))[1])
    sweep_plot({"run_a": [[0.2, 0.30], [0.4, 0.50], [0.6, 0.40]]}, {"run_a": 0.6}, tmp_path / "sweep.png")
    assert labels == ["run run_a", "oracle t = 0.40 (best on GT): 50.0%", "chosen t = 0.60 (used by the run)"]
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_report_has_a_colour_legend_disjoint_galleries_and_links_the_card(reported_run):
    html = (reported_run / "report" / "index.html").read_text()
    dataset = PreparedDataset.load(reported_run / "prepare")
    legend = html[html.index('<p class="legend">'):]
    legend = legend[:legend.index("</p>")]
    for k, name in enumerate(dataset.classes):
        r, g, b = (int(v) for v in dataset.palette[k])
        assert f"rgb({r}, {g}, {b})\"></span>{name}</span>" in legend, name
    pseudo = html[html.index("<h2>Pseudo-masks"):html.index("<h2>Segmenter")]
    galleries = re.split(r"<h3>(best|worst|random): [^<]*</h3>", pseudo)[1:]
    shown = {name: re.findall(r"<figcaption>(\w+) \(this run\)", body)
             for name, body in zip(galleries[::2], galleries[1::2])}
    assert set(shown) == {"best", "worst", "random"}
    every = [i for ids in shown.values() for i in ids]
    assert len(every) == len(set(every)) == TINY_TRAIN == 12  # 4 each, no photo twice
    card_part = html[html.index("<h2>The pseudo-mask data set"):]
    assert '"per_image"' not in card_part and "dataset_card.json</a>" in card_part and "README.md</a>" in card_part
    readme = (reported_run / "refine_masks" / "pseudo_masks" / "README.md").read_text()
    assert all(f"| {k} | {name} |" in readme for k, name in enumerate(dataset.classes))
    assert "PseudoMaskSet" in readme and "np.array(Image.open(" in readme


def test_a_moved_pseudo_mask_set_loads_in_mmseg_alone_in_a_fresh_interpreter(reported_run, tmp_path):
    """The set is copied elsewhere (the run folder renamed away, so no path can point back)
    and loaded with mmseg's own DATASETS.build through the snippet of its README, in a
    fresh interpreter that imports nothing of this project."""
    source = reported_run / "refine_masks" / "pseudo_masks"
    moved = tmp_path / "elsewhere" / "my_set"
    shutil.copytree(source, moved)
    hidden = reported_run.with_name(reported_run.name + "_hidden")
    reported_run.rename(hidden)
    try:
        card = json.loads((moved / "dataset_card.json").read_text())
        assert not any(str(reported_run) in str(v) for v in (card["images_dir"], card["masks_dir"], card["list"]))
        readme = (moved / "README.md").read_text()
        snippet = readme[readme.index("custom_imports"):].split("```")[0]
        assert "type='PseudoMaskSet'" in snippet
        script = f"""
import sys
sys.path.insert(0, {str(moved)!r})
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
{snippet}
cfg = Config(dict(custom_imports=custom_imports, train_dataloader=train_dataloader))
import_modules_from_strings(**cfg.custom_imports)
from mmseg.registry import DATASETS
from mmseg.utils import register_all_modules
register_all_modules()
dataset = DATASETS.build(cfg.train_dataloader.dataset)
item = dataset[0]
assert 'pipeline' not in sys.modules and 'stages' not in sys.modules
print(len(dataset), item['img'].shape, item['gt_seg_map'].shape, dataset.metainfo['classes'][1])
"""
        out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        n, *_, first_class = out.stdout.split()
        assert int(n) == card["counts"]["images"] == TINY_TRAIN and first_class == card["classes"][1]
    finally:
        hidden.rename(reported_run)


def test_report_compares_two_runs_side_by_side(reported_run, tmp_path):
    other = tmp_path / "cam_run"
    shutil.copytree(reported_run, other, symlinks=True, ignore=shutil.ignore_patterns("report"))
    cfg = load_config(TINY_CONFIG, {"report.compare_runs": [str(other)]})
    Pipeline(STAGES, cfg, reported_run).run(["report"])
    page = reported_run / "report" / "index.html"
    html = page.read_text()
    assert "this run" in html and "cam_run" in html and "seed (cam_run)" in html
    assert any(f.endswith("_cam_run.png") for f in referenced_files(page))
    for ref in referenced_files(page):
        assert (page.parent / ref).is_file(), ref


def test_one_compared_run_can_be_given_on_the_command_line(reported_run, tmp_path):
    other = tmp_path / "cam_run"
    shutil.copytree(reported_run, other, symlinks=True, ignore=shutil.ignore_patterns("report"))
    argv = ["--config", TINY_CONFIG, "--work-dir", str(reported_run), "--stage", "report"]
    assert run_pipeline.main(argv + ["--cfg-options", f"report.compare_runs={tmp_path}"]) == 2  # not a run
    assert run_pipeline.main(argv + ["--cfg-options", f"report.compare_runs={other}"]) == 0
    assert "seed (cam_run)" in (reported_run / "report" / "index.html").read_text()


def test_show_writes_one_panel(reported_run, capsys):
    image_id = PreparedDataset.load(reported_run / "prepare").split("train")[0]
    assert run_pipeline.main(["--config", TINY_CONFIG, "--work-dir", str(reported_run), "--show", image_id]) == 0
    path = reported_run / "show" / f"{image_id}.png"
    assert str(path) in capsys.readouterr().out
    with Image.open(path) as panel:
        assert panel.width > 4 * panel.height  # image, maps, pseudo-mask, GT side by side
    assert run_pipeline.main(["--config", TINY_CONFIG, "--work-dir", str(reported_run), "--show", "nope"]) == 2


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_report_opens_in_headless_chromium_without_errors(reported_run, tmp_path):
    shot = tmp_path / "shot.png"
    page = (reported_run / "report" / "index.html").resolve()
    assert page.is_file()
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
         "--v=0", f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), result.stderr[-2000:]
    for problem in ("ERR_FILE_NOT_FOUND", "Uncaught", "Failed to load resource"):
        assert problem not in result.stderr, result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 5 and (pixels < 128).mean() > 0.005  # text, tables and images drawn, not blank
