"""End to end in a real headless browser: Debian's chromium driven by Playwright.

Skips when Playwright or chromium is missing.  Screenshots go to ``$CNNLAB_SCREENSHOTS``
(default ``build/screenshots`` in the current folder, which git ignores).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CNNLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

SHOTS = Path(os.environ.get("CNNLAB_SCREENSHOTS", "build/screenshots"))


@pytest.fixture(scope="module")
def server(runs_dir):
    import uvicorn

    from cnnlab.web import Limits, bind, create_app

    sock = bind("127.0.0.1", 0)
    app = create_app(runs_dir, Limits(max_epochs=5))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server)
    yield pg
    pg.close()
    assert errors == [], errors


def test_explorer_loads_an_image(page, tmp_path):
    from PIL import Image

    img = Image.new("L", (32, 32), 0)
    img.paste(255, (12, 4, 20, 28))
    img.save(tmp_path / "bar.png")
    page.set_input_files("#in-image", str(tmp_path / "bar.png"))
    sync_api.expect(page.locator("#input-grid input")).to_have_count(16)
    assert page.input_value("#in-rows") == "4"
    values = [page.input_value(f'#input-grid input[data-row="1"][data-col="{j}"]') for j in range(4)]
    assert values[0] == "0" and max(int(v) for v in values) >= 4  # the bar is in the middle columns
    sync_api.expect(page.locator("#step-pos")).to_contain_text("of 9")


def test_explorer_shows_five_and_follows_edits(page):
    answer = page.locator("#answer")
    sync_api.expect(answer).to_have_text("5")
    sync_api.expect(page.locator("#cell-text")).to_have_text("O[0,0] = 1*1 + 0*0 + 0*3 + 1*1 = 2")
    page.screenshot(path=str(SHOTS / "explorer-default.png"), full_page=True)
    # step through the windows, by button and by keyboard
    page.click("#step-fwd")
    sync_api.expect(page.locator("#cell-text")).to_have_text("O[0,1] = 1*0 + 0*2 + 0*1 + 1*0 = 0")
    page.click("#step-fwd")
    page.click("#step-fwd")
    sync_api.expect(page.locator("#cell-text")).to_have_text("O[1,1] = 1*1 + 0*0 + 0*0 + 1*4 = 5")
    sync_api.expect(page.locator("#step-pos")).to_contain_text("window 4 of 4")
    assert page.locator("#conv-view td.tap").count() == 4
    page.click("#step-back")
    sync_api.expect(page.locator("#step-pos")).to_contain_text("window 3 of 4")
    # edit the bottom-right input cell: 4 -> 9 makes the answer 10
    cell = page.locator('#input-grid input[data-row="2"][data-col="2"]')
    cell.fill("9")
    sync_api.expect(answer).to_have_text("10")
    page.screenshot(path=str(SHOTS / "explorer-edited.png"), full_page=True)
    # a bad setting shows the server's message and the page keeps working
    page.fill("#padding", "0")
    page.fill("#dilation", "4")
    page.dispatch_event("#dilation", "change")
    sync_api.expect(page.locator("#error")).to_contain_text("larger than the padded input")
    page.fill("#dilation", "1")
    page.dispatch_event("#dilation", "change")
    sync_api.expect(page.locator("#error")).to_be_hidden()
    sync_api.expect(answer).to_have_text("10")


def test_model_viewer_draw_and_predict(page):
    page.click("#tab-model")
    sync_api.expect(page.locator("#ckpt option")).not_to_have_count(0)
    page.select_option("#ckpt", "bars/best.safetensors")
    sync_api.expect(page.locator("#model-info")).to_contain_text("Conv2d")
    sync_api.expect(page.locator("#draw")).to_be_visible()
    box = page.locator("#draw").bounding_box()
    # a vertical stroke down the middle of the canvas
    page.mouse.move(box["x"] + 140, box["y"] + 40)
    page.mouse.down()
    for y in range(40, 250, 10):
        page.mouse.move(box["x"] + 140, box["y"] + y)
    page.mouse.up()
    sync_api.expect(page.locator("#probs .bar")).to_have_count(2)
    assert page.locator("#probs").get_attribute("data-predicted") == "0"  # vertical
    sync_api.expect(page.locator("#probs .bar.top .name")).to_have_text("vertical")
    assert page.locator("#maps canvas").count() >= 8
    # click a cell of the first conv layer's first map: its arithmetic appears
    page.locator("#maps canvas.clickable").first.click(position={"x": 40, "y": 40})
    sync_api.expect(page.locator("#model-cell")).to_contain_text("0[0][")
    sync_api.expect(page.locator("#cell-window canvas")).to_have_count(1)  # the window on the 1-channel input
    page.screenshot(path=str(SHOTS / "model-viewer.png"), full_page=True)
    # a cell of the second conv layer: its window spans the 4 maps of the layer before it
    page.locator("#maps canvas.clickable").nth(4).click(position={"x": 20, "y": 20})
    sync_api.expect(page.locator("#model-cell")).to_contain_text("3[0][")
    sync_api.expect(page.locator("#cell-window canvas")).to_have_count(4)
    page.locator("#cell-window").screenshot(path=str(SHOTS / "model-cell-window.png"))
    page.click("#draw-clear")
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 140)
    page.mouse.down()
    for x in range(30, 260, 10):
        page.mouse.move(box["x"] + x, box["y"] + 140)
    page.mouse.up()
    sync_api.expect(page.locator("#probs .bar.top .name")).to_have_text("horizontal")


def test_training_monitor_curve_grows(page, mnist1d_run):
    page.click("#tab-train")
    page.select_option("#t-data", "mnist1d")
    page.fill("#t-model", "mnist1d-cnn")
    page.fill("#t-epochs", "4")
    page.fill("#t-limit", "400")
    page.click("#t-start")
    points = page.locator("#chart-loss circle.point")
    sync_api.expect(points.first).to_be_visible(timeout=30_000)
    first = points.count()
    sync_api.expect(page.locator("#t-status")).to_contain_text("(finished)", timeout=60_000)
    assert page.locator("#chart-loss circle.point").count() > first or first == 8
    assert page.locator("#chart-loss circle.point").count() == 8  # train and val loss, 4 epochs
    assert page.locator("#t-filters canvas").count() > 0
    page.screenshot(path=str(SHOTS / "training-monitor.png"), full_page=True)
