"""The paper test's renders (glyphkit.scans): each condition of a real note draws what it says, at the size it says,
the same for a seed; touching letters touch and gapped ones do not; pages hold their lines; blank pages hold no
writing. No model: glyphs are drawn by the tests (a ring, a bar, a block), not taken from EMNIST."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter
from skimage.measure import label, regionprops

from glyphkit import scans


def ring() -> np.ndarray:
    """An 'O': a bright ring in the 28x28 frame, EMNIST's way round (ink bright on black)."""
    ys, xs = np.mgrid[0:28, 0:28]
    r = np.hypot(ys - 13.5, xs - 13.5)
    return np.where((r > 6) & (r < 10), 255, 0).astype(np.uint8)


def bar(left: int = 12, right: int = 16) -> np.ndarray:
    """An 'l': a vertical bar of full ink, rows 3-24, columns left..right-1."""
    glyph = np.zeros((28, 28), np.uint8)
    glyph[3:25, left:right] = 255
    return glyph


def grey(image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


def dark(image) -> np.ndarray:
    """Ink pixels: darker than halfway between the darkest pixel and the paper (the median)."""
    g = grey(image)
    return g < (g.min() + np.median(g)) / 2


def runs(profile: np.ndarray) -> int:
    """How many separate runs of True a 1-d mask holds."""
    return int(profile[0]) + int(np.count_nonzero(profile[1:] & ~profile[:-1]))


RGB_CONDITIONS = {"ruled", "sticky"}


@pytest.mark.parametrize("condition", scans.CONDITIONS)
def test_each_condition_is_an_image_of_its_mode_and_the_same_for_a_seed(condition):
    first = scans.render_condition(ring(), condition, np.random.default_rng(7))
    again = scans.render_condition(ring(), condition, np.random.default_rng(7))
    other = scans.render_condition(ring(), condition, np.random.default_rng(8))
    assert first.mode == ("RGB" if condition in RGB_CONDITIONS else "L")
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert first.size != other.size or not np.array_equal(np.asarray(first), np.asarray(other))
    assert dark(first).any()  # the glyph is there


def test_an_unknown_condition_is_refused_by_name():
    with pytest.raises(ValueError, match="ruled"):
        scans.render_condition(ring(), "napkin", np.random.default_rng(0))


def test_sizes_of_small_and_tiny_glyphs():
    rng = np.random.default_rng(0)
    for _ in range(5):
        small = scans.render_condition(bar(), "small", rng)
        rows = np.flatnonzero(dark(small).any(1))
        assert small.size == (640, 480) and 14 <= rows[-1] - rows[0] + 1 <= 40  # the bar: 22/28 of a 24-40 px frame
        tiny = scans.render_condition(ring(), "jpeg", rng)
        assert all(14 + 2 * 3 <= side <= 20 + 2 * 15 for side in tiny.size)


def blue_rows(image) -> np.ndarray:
    """Rows bluer than the page (blue minus red, the row's median against the page's, 10 levels of 255 more)."""
    rgb = np.asarray(image, dtype=np.float32)
    blue = np.median(rgb[..., 2] - rgb[..., 0], axis=1)
    return np.flatnonzero(blue > np.median(blue) + 10)


@pytest.mark.parametrize("seed", range(5))
def test_ruled_paper_has_blue_rules_a_red_margin_and_the_glyph_on_a_rule(seed):
    image = scans.render_condition(bar(), "ruled", np.random.default_rng(seed))
    rgb = np.asarray(image, dtype=np.float32)
    rules = blue_rows(image)
    assert len(rules) >= 2
    redness = np.median(rgb[..., 0] - rgb[..., 1], axis=0)
    red = np.flatnonzero(redness > np.median(redness) + 15)  # columns redder than the page
    ink_rows, ink_cols = np.nonzero(rgb[..., :2].max(axis=2) < 110)  # the pen: dark in red and green
    assert len(red) and red.max() < ink_cols.min()  # the margin line, left of the writing
    height = ink_rows.max() - ink_rows.min() + 1
    assert np.abs(rules - ink_rows.max()).min() <= 0.06 * height + 3  # a rule touches the bar's foot
    starts = rules[np.r_[True, np.diff(rules) > 0.3 * height]]  # a thick or blurred rule is one rule
    assert 0.7 * height <= np.median(np.diff(starts)) <= 1.3 * height  # rules 0.8-1.2 glyph heights apart


def test_squared_paper_has_a_grid_finer_than_the_glyph():
    image = scans.render_condition(ring(), "squared", np.random.default_rng(3))
    g = grey(image)
    glyph = dark(image)
    size = max(np.ptp(np.flatnonzero(glyph.any(1))), np.ptp(np.flatnonzero(glyph.any(0)))) + 1
    for axis in (0, 1):
        profile = np.median(g, axis=axis)  # a grid line darkens a whole column (axis 0) or row (axis 1)
        lines = profile < np.median(profile) - 0.05
        starts = np.flatnonzero(lines[1:] & ~lines[:-1])
        assert len(starts) >= 2
        assert 0.4 * size <= np.median(np.diff(starts)) <= 1.1 * size


def test_chalk_is_light_on_a_dark_board():
    g = grey(scans.render_condition(ring(), "chalk", np.random.default_rng(1)))
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    assert np.median(border) < 0.45 and np.percentile(g, 99.5) > np.median(border) + 0.25


@pytest.mark.parametrize("seed", range(4))
def test_a_shadow_darkens_part_of_the_paper_by_30_to_60_percent(seed):
    image = scans.render_condition(ring(), "shadow", np.random.default_rng(seed))
    g = grey(image)
    paper = g[~dark(image) & (g > 0)]
    light, shaded = np.percentile(paper, 97), np.percentile(paper, 3)
    assert 0.25 <= 1 - shaded / light <= 0.7  # 30-60%, give or take the light's gradient and the noise


@pytest.mark.parametrize("seed", range(4))
def test_a_tilted_photo_is_5_to_10_degrees_off(seed):
    ys, xs = np.nonzero(dark(scans.render_condition(bar(), "tilted", np.random.default_rng(seed))))
    slope = np.polyfit(ys, xs, 1)[0]  # the bar's x per row
    assert 4 <= abs(np.degrees(np.arctan(slope))) <= 11


def test_a_sticky_note_is_coloured():
    rgb = np.asarray(scans.render_condition(ring(), "sticky", np.random.default_rng(2)), dtype=np.float32)
    paper = np.median(rgb.reshape(-1, 3), axis=0)
    assert paper.max() - paper.min() > 25


def block(width: int) -> np.ndarray:
    """A block of full ink `width` columns wide, centred: its ink box is exactly known."""
    glyph = np.zeros((28, 28), np.uint8)
    glyph[3:25, 14 - width // 2 : 14 - width // 2 + width] = 255
    return glyph


def ink_extents(inks: list[np.ndarray], xs: np.ndarray) -> list[tuple[int, int]]:
    """Each glyph's ink columns (first, last + 1) on the line, measured here from the arrays."""
    return [
        (x + np.flatnonzero(i.max(0) >= 0.5)[0], x + np.flatnonzero(i.max(0) >= 0.5)[-1] + 1) for i, x in zip(inks, xs)
    ]


@settings(max_examples=30, deadline=None)
@given(
    widths=st.lists(st.integers(3, 20), min_size=2, max_size=8), seed=st.integers(0, 2**16), side=st.integers(40, 120)
)
def test_touching_letters_overlap_by_at_most_8_percent_and_gapped_ones_never_touch(widths, seed, side):
    inks = [scans.scaled(block(w), side) for w in widths]
    for gap, touching in (((-0.08, 0.0), True), ((0.02, 0.15), False)):
        xs, _ = scans.line_positions(inks, np.random.default_rng(seed), gap)
        extents = ink_extents(inks, xs)
        for (_, right), (left, _), a, b in zip(extents, extents[1:], inks, inks[1:]):
            mean_width = (np.ptp(np.flatnonzero(a.max(0) >= 0.5)) + np.ptp(np.flatnonzero(b.max(0) >= 0.5))) / 2 + 1
            if touching:
                assert 0 <= right - left <= 0.08 * mean_width + 0.5  # the ink boxes meet or overlap
            else:
                assert 1 <= left - right <= 0.15 * mean_width + 0.5  # at least a pixel of paper between


def test_a_touching_line_is_one_stroke_and_a_spaced_line_is_not():
    glyphs = np.stack([block(8), block(10), block(6), block(12)])
    touching = scans.render_line(glyphs, np.random.default_rng(0), gap=(-0.08, -0.04))
    spaced = scans.render_line(glyphs, np.random.default_rng(0), gap=(0.4, 0.6))
    assert runs(dark(touching).any(0)) == 1
    assert runs(dark(spaced).any(0)) == 4


def test_a_line_is_the_same_for_a_seed():
    glyphs = np.stack([ring(), bar(), ring()])
    first, again = (np.asarray(scans.render_line(glyphs, np.random.default_rng(5))) for _ in range(2))
    assert np.array_equal(first, again)


@pytest.mark.parametrize("paper", scans.PAGE_PAPERS)
def test_a_page_holds_its_lines_one_under_the_other(paper):
    lines = [np.stack([bar()] * n) for n in (5, 3, 7, 4)]
    image = scans.render_page(lines, np.random.default_rng(4), paper)
    assert image.mode == ("RGB" if paper == "ruled" else "L")
    labels = label(dark(image))
    bars = sorted((r for r in regionprops(labels) if r.area > 20), key=lambda r: r.centroid[0])
    assert len(bars) == 19  # every glyph, none joined to another
    centres = np.array([r.centroid[0] for r in bars])
    breaks = np.flatnonzero(np.diff(centres) > 0.5 * np.median([r.bbox[2] - r.bbox[0] for r in bars]))
    assert np.diff(np.r_[0, breaks + 1, len(bars)]).tolist() == [5, 3, 7, 4]  # four lines, top to bottom
    if paper == "ruled":
        assert len(blue_rows(image)) >= 4


def light_blue(image) -> np.ndarray:
    """The pixels of a ruled page's printed rules: bluer than red by 20 levels of 255 once the photo's noise is
    smoothed (a faint rule is 40 bluer, the noise about 10 either way), and light (a blue pen's ink is dark)."""
    rgb = gaussian_filter(np.asarray(image, dtype=np.float32), sigma=(1, 1, 0))
    return (rgb[..., 2] - rgb[..., 0] > 20) & (rgb[..., 0] > 100)


def rule_slope(image) -> float:
    """Degrees the ruled lines of a photo climb to the right (counter-clockwise positive): the median slope of the
    pieces of rule at least 40 pixels long (the noise breaks a faint rule), each fitted by least squares."""
    slopes = []
    for piece in regionprops(label(light_blue(image), connectivity=2)):
        ys, xs = piece.coords.T
        if np.ptp(xs) >= 40:
            slopes.append(np.degrees(np.arctan(-np.polyfit(xs, ys, 1)[0])))  # rows count down the image: minus
    return float(np.median(slopes))


@pytest.mark.parametrize("turn", [-8.0, 5.0])
def test_a_turned_page_is_the_same_page_with_its_rules_and_writing_turned(turn):
    lines = [np.stack([ring(), bar(), ring()]), np.stack([bar()] * 4)]
    level = scans.render_page(lines, np.random.default_rng(3), "ruled")
    again = scans.render_page(lines, np.random.default_rng(3), "ruled", turn=0.0)
    turned = scans.render_page(lines, np.random.default_rng(3), "ruled", turn=turn)
    assert np.array_equal(np.asarray(level), np.asarray(again))  # no turn: the very same photo
    assert rule_slope(level) == pytest.approx(0.0, abs=0.2)
    assert rule_slope(turned) == pytest.approx(turn, abs=0.5)
    glyphs = [r for r in regionprops(label(dark(turned))) if r.area > 20]
    assert len(glyphs) == 7  # all the writing is in the photo, none of it cut off at an edge


def desk_and_sheet(image) -> tuple[float, float]:
    """(the median tone of a photo's outer 4 pixels, of its middle ninth): a desk's and the sheet's on it."""
    tones = grey(image)
    band = np.concatenate([tones[:4].ravel(), tones[-4:].ravel(), tones[:, :4].ravel(), tones[:, -4:].ravel()])
    middle = tones[tones.shape[0] // 3 : 2 * tones.shape[0] // 3, tones.shape[1] // 3 : 2 * tones.shape[1] // 3]
    return float(np.median(band)), float(np.median(middle))


@pytest.mark.parametrize("paper", scans.PAGE_PAPERS)
def test_a_page_on_a_desk_is_the_sheet_with_a_darker_desk_all_round(paper):
    lines = [np.stack([ring(), bar(), ring()]), np.stack([bar()] * 4)]
    level = scans.render_page(lines, np.random.default_rng(3), paper)
    on_desk = scans.render_page(lines, np.random.default_rng(3), paper, desk=True)
    assert on_desk.width > level.width and on_desk.height > level.height
    desk, sheet = desk_and_sheet(on_desk)
    assert desk <= scans.DESK[1] + 0.05  # the desk's tone, darkened a little more by the photo's light
    assert sheet >= scans.PAPER[0] * 0.85 - 0.05  # the sheet: paper, under the photo's gradient


def test_a_blank_sheet_on_a_desk_is_lighter_than_the_desk_round_it():
    for seed in range(3):
        desk, sheet = desk_and_sheet(scans.render_blank("desk", np.random.default_rng(seed)))
        assert desk <= scans.DESK[1] + 0.05 and sheet >= scans.PAPER[0] * 0.85 - 0.05


def test_a_page_drawn_to_a_size_is_not_turned_nor_laid_on_a_desk():
    with pytest.raises(ValueError, match="turned"):
        scans.render_page([np.stack([bar()])], np.random.default_rng(0), "plain", size=(800, 600), turn=5.0)
    with pytest.raises(ValueError, match="desk"):
        scans.render_page([np.stack([bar()])], np.random.default_rng(0), "plain", size=(800, 600), desk=True)


def test_an_unknown_paper_is_refused_by_name():
    with pytest.raises(ValueError, match="squared"):
        scans.render_page([np.stack([bar()])], np.random.default_rng(0), "papyrus")


def test_a_large_page_is_a_12_megapixel_photo_with_writing():
    image = scans.render_large_page([np.stack([ring(), bar()])] * 3, np.random.default_rng(0))
    assert image.size == (4000, 3000) and image.mode == "L"
    assert 6 <= len([r for r in regionprops(label(dark(image))) if r.area > 500]) <= 6 * 2


@pytest.mark.parametrize("kind", scans.BLANK_KINDS)
def test_a_blank_page_holds_no_writing(kind):
    image = scans.render_blank(kind, np.random.default_rng(9))
    again = scans.render_blank(kind, np.random.default_rng(9))
    assert np.array_equal(np.asarray(image), np.asarray(again))
    if kind == "desk":  # a sheet lying on a desk: test_a_blank_sheet_on_a_desk_is_lighter_than_the_desk_round_it
        return
    assert image.mode == ("RGB" if kind == "ruled" else "L") and 600 <= image.size[0] <= 1200
    g = grey(image)
    if kind == "shadowed":
        light = np.percentile(g, 97)
        assert 0.25 <= 1 - np.percentile(g, 3) / light <= 0.7
        return
    darkest = g < 0.6 * np.median(g)  # a pen's tone; the paper's own lines and fibres are lighter
    blobs = [r for r in regionprops(label(darkest))]
    assert all(max(r.bbox[2] - r.bbox[0], r.bbox[3] - r.bbox[1]) <= 6 for r in blobs)  # at most specks
    if kind != "textured":
        assert not blobs


def test_an_unknown_blank_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="textured"):
        scans.render_blank("parchment", np.random.default_rng(0))
