"""The diagram editor on a laptop screen: the whole site fits, zoom and pan, drag (or keyboard)
an element onto a new parent, and the version diff that shows the move."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from ems.sites import Change, get_site, import_site, list_versions
from tests.ui.conftest import TIMEOUT_MS, LiveEms, log_in, office_site, screenshot

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 800}
OFFICE_NODES = 1 + 4 + 12 + 12 + 1 + 1  # grid, protections, charge points, connectors, PV, load


@pytest.fixture
def laptop(chromium: Browser) -> Iterator[Page]:
    """A 1280 x 800 CSS px viewport: a small laptop, where the office site must fit."""
    context = chromium.new_context(viewport=LAPTOP)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def open_office(live: LiveEms, page: Page) -> None:
    import_site(live.ctx, office_site(), Change("as built", "alice"))
    log_in(page, live.url)
    page.goto(f"{live.url}/admin/sites/office-pv")
    expect(page.get_by_test_id("node-grid-grid")).to_be_visible()


def outside(page: Page) -> list[str]:
    """The nodes not wholly inside both the diagram's panel and the viewport."""
    panel = page.get_by_test_id("diagram-view").bounding_box()
    assert panel is not None
    out = []
    nodes = page.locator("[data-testid^=node-]")
    for i in range(nodes.count()):
        node = nodes.nth(i)
        b = node.bounding_box()
        assert b is not None
        inside_panel = (
            b["x"] >= panel["x"] - 0.5
            and b["y"] >= panel["y"] - 0.5
            and b["x"] + b["width"] <= panel["x"] + panel["width"] + 0.5
            and b["y"] + b["height"] <= panel["y"] + panel["height"] + 0.5
        )
        inside_viewport = (
            b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= 1280 and b["y"] + b["height"] <= 800
        )
        if not (inside_panel and inside_viewport):
            out.append(str(node.get_attribute("data-testid")))
    return out


def centre(page: Page, testid: str) -> tuple[float, float]:
    b = page.get_by_test_id(testid).bounding_box()
    assert b is not None
    return b["x"] + b["width"] / 2, b["y"] + b["height"] / 2


def background_point(page: Page) -> tuple[float, float]:
    """A point of the diagram's panel on no element, where a press pans."""
    point = page.evaluate(
        """() => {
          const r = document.querySelector('[data-testid=diagram-view]').getBoundingClientRect();
          for (let y = r.top + 20; y < r.bottom - 60; y += 10)
            for (let x = r.left + 20; x < r.right - 80; x += 10) {
              const hit = document.elementFromPoint(x, y);
              if (hit && hit.closest('svg.diagram') && !hit.closest('.node')) return [x, y];
            }
          return null;
        }"""
    )
    assert point is not None
    return point[0], point[1]


def drag(page: Page, source: str, target: str, lit: str) -> None:
    """Press on `source`, move in small steps as a hand would, release on `target`; while over
    it, the target is lit as `lit` (drop-target or drop-refused) and a ghost follows the pointer."""
    (sx, sy), (tx, ty) = centre(page, source), centre(page, target)
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(sx + 8, sy + 8, steps=4)
    page.mouse.move(tx, ty, steps=15)
    expect(page.get_by_test_id(target)).to_have_class(re.compile(rf"\b{lit}\b"))
    expect(page.locator("svg.diagram .ghost")).to_have_count(1)
    expect(page.get_by_test_id(source)).to_have_class(re.compile(r"\bdragging\b"))
    page.mouse.up()
    expect(page.locator("svg.diagram .ghost")).to_have_count(0)


def test_the_whole_office_diagram_fits_a_laptop_screen(live: LiveEms, laptop: Page) -> None:
    open_office(live, laptop)
    assert laptop.locator("[data-testid^=node-]").count() == OFFICE_NODES
    assert outside(laptop) == []
    expect(laptop.get_by_test_id("diagram-keys")).to_contain_text("wheel zooms")
    screenshot(laptop, "editor-office-fit")


def test_zoom_in_then_fit_shows_the_whole_diagram_again(live: LiveEms, laptop: Page) -> None:
    open_office(live, laptop)
    for _ in range(3):
        laptop.get_by_test_id("zoom-in").click()
    assert len(outside(laptop)) > 0
    laptop.get_by_test_id("zoom-fit").click()
    assert outside(laptop) == []

    x, y = centre(laptop, "diagram-view")
    laptop.mouse.move(x, y)
    laptop.mouse.wheel(0, -400)  # the wheel zooms in around the pointer
    expect(laptop.get_by_test_id("diagram")).not_to_have_attribute(
        "viewBox", str(laptop.get_by_test_id("diagram").get_attribute("data-fit-box"))
    )
    zoomed = outside(laptop)
    assert zoomed
    before = centre(laptop, "node-grid-grid")
    bx, by = background_point(laptop)
    laptop.mouse.move(bx, by)
    laptop.mouse.down()
    laptop.mouse.move(bx + 60, by + 40, steps=6)
    laptop.mouse.up()
    after = centre(laptop, "node-grid-grid")
    assert after[0] - before[0] == pytest.approx(60, abs=2) and after[1] - before[1] == pytest.approx(
        40, abs=2
    )
    # a save swaps a new diagram in: the zoom stays as the user left it
    viewbox = laptop.get_by_test_id("diagram").get_attribute("viewBox")
    laptop.evaluate("document.querySelector('svg.diagram').dataset.old = 'yes'")
    laptop.get_by_test_id("field-max_power_kw").fill("44")
    laptop.get_by_test_id("save").click()
    expect(laptop.get_by_test_id("panel-message")).to_contain_text("Saved as version 2")
    expect(laptop.get_by_test_id("node-grid-grid")).to_contain_text("max 44 kW")
    assert laptop.get_by_test_id("diagram").get_attribute("data-old") is None  # a new diagram
    assert laptop.get_by_test_id("diagram").get_attribute("viewBox") == viewbox
    laptop.get_by_test_id("zoom-fit").click()
    assert outside(laptop) == []


def test_dragging_a_charge_point_under_another_protection_saves_a_version_the_diff_shows(
    live: LiveEms, laptop: Page
) -> None:
    open_office(live, laptop)
    drag(laptop, "node-charge_point-cp1", "node-protection-zedbox2", "drop-target")
    expect(laptop.get_by_test_id("diagram-status")).to_contain_text("Moved charge point cp1 under zedbox2")
    expect(laptop.get_by_test_id("version-2")).to_contain_text("moved cp1 under zedbox2")
    expect(laptop.get_by_test_id("version-2")).to_contain_text("by admin")
    expect(laptop.get_by_test_id("node-charge_point-cp1")).to_have_attribute(
        "data-parent", "node-protection-zedbox2"
    )
    stored = get_site(live.ctx, "office-pv")
    assert stored.version == 2
    assert next(cp for cp in stored.site.charge_points if cp.id == "cp1").protection == "zedbox2"
    assert outside(laptop) == []
    screenshot(laptop, "editor-drag-move")

    expect(laptop.get_by_test_id("diff-from")).to_have_value("1")
    expect(laptop.get_by_test_id("diff-to")).to_have_value("2")
    laptop.get_by_test_id("compare").click()
    diff = laptop.get_by_test_id("diff")
    expect(diff).to_contain_text("charge point cp1: under ibst → zedbox2")
    expect(laptop.get_by_test_id("diff-card")).to_contain_text("Europe/Paris")
    assert diff.locator("li").count() == 1
    laptop.get_by_test_id("diff-card").scroll_into_view_if_needed()
    screenshot(laptop, "editor-version-diff")


def test_a_click_still_opens_the_panel(live: LiveEms, laptop: Page) -> None:
    open_office(live, laptop)
    x, y = centre(laptop, "node-charge_point-cp4")
    laptop.mouse.move(x, y)
    laptop.mouse.down()
    laptop.mouse.move(x + 2, y + 1, steps=2)  # a hand that shakes a little: still a click
    laptop.mouse.up()
    expect(laptop.get_by_test_id("panel-charge_point-cp4")).to_be_visible()
    assert get_site(live.ctx, "office-pv").version == 1


def test_enter_on_a_node_just_swapped_in_opens_its_panel(live: LiveEms, laptop: Page) -> None:
    """The diagram is swapped on every site change; a key pressed before htmx has settled the
    new nodes (20 ms later) must not be lost, as it was in a CI run."""
    open_office(live, laptop)
    laptop.evaluate(
        """() => new Promise((resolve) => {
            document.body.addEventListener("htmx:afterSwap", function pressed(event) {
                if (event.detail.target.id !== "diagram") return;
                document.body.removeEventListener("htmx:afterSwap", pressed);
                const node = document.querySelector('[data-testid="node-charge_point-cp8"]');
                node.focus();
                node.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
                resolve();
            });
            htmx.trigger(document.body, "site-changed");
        })"""
    )
    expect(laptop.get_by_test_id("panel-charge_point-cp8")).to_be_visible()


def test_the_keyboard_walks_the_tree_and_moves_an_element(live: LiveEms, laptop: Page) -> None:
    open_office(live, laptop)

    def focused() -> str:
        return str(laptop.evaluate("document.activeElement.getAttribute('data-testid')"))

    laptop.get_by_test_id("node-charge_point-cp7").focus()
    laptop.keyboard.press("ArrowDown")
    assert focused() == "node-connector-cp7-1"
    laptop.keyboard.press("ArrowUp")
    laptop.keyboard.press("ArrowRight")
    assert focused() == "node-charge_point-cp8"
    laptop.keyboard.press("ArrowLeft")
    assert focused() == "node-charge_point-cp7"

    laptop.keyboard.press("m")
    expect(laptop.get_by_test_id("diagram-status")).to_contain_text("Picked up charge point cp7")
    laptop.keyboard.press("Escape")
    expect(laptop.get_by_test_id("diagram-status")).to_contain_text("Move cancelled")

    laptop.keyboard.press("m")
    laptop.keyboard.press("ArrowUp")
    assert focused() == "node-protection-zedbox2"
    laptop.keyboard.press("ArrowLeft")
    assert focused() == "node-protection-zedbox1"
    laptop.keyboard.press("Enter")
    expect(laptop.get_by_test_id("diagram-status")).to_contain_text("Moved charge point cp7 under zedbox1")
    expect(laptop.get_by_test_id("node-charge_point-cp7")).to_have_attribute(
        "data-parent", "node-protection-zedbox1"
    )
    expect(laptop.get_by_test_id("node-charge_point-cp7")).to_be_focused()  # back where the user was
    assert next(
        cp for cp in get_site(live.ctx, "office-pv").site.charge_points if cp.id == "cp7"
    ).protection == ("zedbox1")

    laptop.get_by_test_id("node-connector-cp7-1").focus()
    laptop.keyboard.press("m")
    expect(laptop.get_by_test_id("diagram-status")).to_contain_text("move its charge point")
    laptop.get_by_test_id("node-charge_point-cp8").focus()
    laptop.keyboard.press("Enter")  # nothing picked up: Enter opens the panel
    expect(laptop.get_by_test_id("panel-charge_point-cp8")).to_be_visible()
    screenshot(laptop, "editor-keyboard-move")


def test_a_protection_dropped_into_its_own_subtree_is_refused(live: LiveEms, laptop: Page) -> None:
    open_office(live, laptop)
    drag(laptop, "node-protection-ibst", "node-protection-zedbox1", "drop-refused")
    status = laptop.get_by_test_id("diagram-status")
    expect(status).to_contain_text("Not moved, nothing was stored")
    expect(status).to_contain_text("own subtree")
    expect(laptop.get_by_test_id("panel-problems")).to_contain_text("'zedbox1' is fed by 'ibst'")
    screenshot(laptop, "editor-drop-refused")
    assert [v.version for v in list_versions(live.ctx, "office-pv")] == [1]
    expect(laptop.get_by_test_id("version-2")).to_have_count(0)
    expect(laptop.get_by_test_id("node-protection-ibst")).to_have_attribute(
        "data-parent", "node-protection-main"
    )
