"""Moving around the results: n/p over the divergences, tab over the engines, the step explorer
(←/→, [ ], g) with every engine's top-k at the chosen step, the divergent token (or the cursor)
scrolled into view, and the compare view's engine filter (o)."""

from __future__ import annotations

from app_helpers import (
    app_for,
    column,
    hand_made_snapshot,
    late_divergence_snapshot,
    notifications,
    plain,
    prompt_file,
    shown_columns,
    snapshot_pair,
)

from gendiff.display import number, visible
from gendiff.io.snapshots import load_snapshot
from gendiff.tui.widgets.token_column import TokenColumn


async def test_step_explorer_shows_every_engines_top_k_at_the_chosen_step(tmp_path):
    path = hand_made_snapshot(tmp_path / "snap.json")
    traces = load_snapshot(path).prompts[0].traces  # the trace's own TokenSteps, read independently
    app = app_for(path)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        panel = main.query_one("#panel")
        assert "diverges from hf-single at step 3" in panel.border_title
        await pilot.press("left")  # from the divergence (step 3) to the step before it
        assert main.workbench.step_cursor == 2
        assert "step 2" in panel.border_title
        shown = plain(panel.body, width=150)
        for label in ("hf-single", "hf-left", "packed"):
            step = traces[label].steps[2]
            line = next(x for x in shown.splitlines() if x.startswith(label))
            assert f"chose {visible(step.text)}" in line and f"margin {number(step.margin)}" in line
            assert "≠ ref" not in line  # step 2 is before the divergence: everyone agrees
            for candidate in step.top:
                assert f"{visible(candidate.text)} {number(candidate.logprob)}" in shown
        assert "the first divergence is at step 3" in shown
        # every column marks the cursor's token (◂ after it)
        for tokens in main.query(TokenColumn):
            assert "The◂" in tokens.content.plain.replace("␣", "")
        main.workbench.refresh_list()  # a run rebuilds the list (an engine finished): the cursor stays
        await pilot.pause()
        assert main.workbench.step_cursor == 2 and "step 2" in panel.border_title
        await pilot.press("right_square_bracket")  # ] is → too
        assert main.workbench.step_cursor == 3
        shown = plain(panel.body, width=150)
        left = next(x for x in shown.splitlines() if x.startswith("hf-left"))
        assert "≠ ref" in left and f"margin {number(traces['hf-left'].steps[3].margin)}" in left
        await pilot.press("right", "right", "right")  # clamped at the last step
        assert main.workbench.step_cursor == 3
        await pilot.press("left_square_bracket", "left", "left", "left", "left")  # clamped at 0
        assert main.workbench.step_cursor == 0
        await pilot.press("g")  # back to the divergence record
        assert main.workbench.step_cursor is None
        assert "diverges from hf-single at step 3" in panel.border_title
        assert "◂" not in "".join(c.content.plain for c in main.query(TokenColumn))


async def test_another_prompt_starts_at_its_divergence_not_at_the_old_cursor(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("left")
        assert app.main.workbench.step_cursor == 2
        await pilot.press("down")
        assert app.main.workbench.step_cursor is None
        assert "←/→ step" not in app.main.query_one("#panel").border_title


async def test_n_p_and_tab_walk_the_divergences_over_prompts_then_engines(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(160, 50)) as pilot:
        bench = app.main.workbench
        ws = app.main.ws
        # the divergences, read from the snapshot: prompt 1 hf-left (token), prompt 2 packed (length)
        stops = [
            (i + 1, e) for i, p in enumerate(ws.prompts) for e in ("hf-left", "packed") if e in ws.diverged_engines(p)
        ]
        assert stops == [(1, "hf-left"), (2, "packed")]
        seen = []
        for _ in range(3):
            await pilot.press("n")
            seen.append((bench.current_number, bench.selected_engine))
        assert seen == [stops[1], stops[0], stops[1]]  # from prompt 1's hf-left, n goes on, then wraps
        await pilot.press("p")
        assert (bench.current_number, bench.selected_engine) == stops[0]
        panel = app.main.query_one("#panel")
        assert "hf-left diverges from hf-single at step 3" in panel.border_title
        await pilot.press("tab")
        assert bench.selected_engine == "packed" and "packed identical to hf-single" in panel.border_title
        await pilot.press("shift+tab")
        assert bench.selected_engine == "hf-left"


async def test_n_and_the_step_keys_before_any_run_say_what_to_do(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("n")
        await pilot.press("right")
        said = notifications(app)
        assert any("no divergences yet: run the prompts first (R)" in m for m in said)
        assert any("no tokens to step through yet" in m for m in said)
        assert app.main.workbench.step_cursor is None


def in_view(frame, what):
    """Whether the ``what`` line of the column's tokens is inside the column's viewport, on screen."""
    line = frame.tokens.line_of(what)
    y = frame.content_region.y + line - round(frame.scroll_y)  # the column draws its lines scrolled
    return frame.content_region.y <= y < frame.content_region.bottom


async def test_n_scrolls_a_late_divergent_token_into_view_at_80x24(tmp_path):
    app = app_for(late_divergence_snapshot(tmp_path / "late.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main
        await pilot.pause()
        left = column(main, "hf-left")
        assert left.tokens.line_of("mark") > 20  # far below the top of the column
        assert in_view(left, "mark")  # the selected prompt opens at its divergent token
        left.scroll_home(animate=False)  # the user scrolls away
        await pilot.pause()
        assert not in_view(left, "mark")
        await pilot.press("n")
        await pilot.pause()
        assert main.workbench.selected_engine == "hf-left"
        assert in_view(left, "mark")
        assert in_view(column(main, "hf-single"), "mark")  # the reference marks the same step
        await pilot.press("left")  # the step explorer's cursor follows too
        await pilot.pause()
        assert main.workbench.step_cursor == 129 and in_view(left, "cursor")


# ── the compare view ───────────────────────────────────────────────────────
async def test_compare_view_pairs_engine_at_a_and_b_and_filters_engines(tmp_path):
    a, b = snapshot_pair(tmp_path)
    app = app_for(a, b)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        assert shown_columns(main) == [f"{e}@{s}" for e in ("hf-single", "hf-left", "packed") for s in "AB"]
        header = str(main.query_one("#run-line").content)
        assert "A: bfloat16, sdpa (a.json) vs B: float32, sdpa (b.json)" in header
        await pilot.press("o")
        assert shown_columns(main) == ["hf-single@A", "hf-single@B"] and main.workbench.selected_engine == "hf-single@B"
        await pilot.press("o")
        assert shown_columns(main) == ["hf-left@A", "hf-left@B"]
        await pilot.press("tab")  # tab stays within the filter
        assert main.workbench.selected_engine == "hf-left@B"
        await pilot.press("o", "o")
        assert len(shown_columns(main)) == 6
        await pilot.resize_terminal(80, 24)  # too narrow for six: the selected pair (the last filtered)
        await pilot.pause()
        assert shown_columns(main) == ["packed@A", "packed@B"]
        await pilot.press("tab")
        assert shown_columns(main) == ["hf-single@A", "hf-single@B"]


async def test_the_header_says_which_engine_the_filter_shows(tmp_path):
    a, b = snapshot_pair(tmp_path)
    app = app_for(a, b)
    async with app.run_test(size=(160, 50)) as pilot:
        header = app.main.query_one("#run-line")
        assert "only" not in str(header.content)
        await pilot.press("o")
        assert "only hf-single (o)" in str(header.content)
        await pilot.press("o", "o", "o")
        assert "only" not in str(header.content)


async def test_the_engine_filter_is_only_offered_when_comparing(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("o")
        assert shown_columns(app.main) == ["hf-single", "hf-left", "packed"]
        assert app.main.workbench.only is None
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Only one engine" not in titles  # nor in the palette


async def test_the_header_names_the_model_as_the_snapshot_records_it(tmp_path):
    # one name for a model: its folder's name, the run's header and a saved snapshot's alike
    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    live = app_for(tmp_path / "prompts.txt")
    async with live.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        header = str(live.main.query_one("#run-line").content)
        assert " demo_model " in f" {header} " and "demo model" not in header
    folder = tmp_path / "my-model"
    folder.mkdir()
    other = app_for(tmp_path / "prompts.txt", model=str(folder))
    async with other.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        header = str(other.main.query_one("#run-line").content)
        assert "my-model" in header and str(tmp_path) not in header
    viewer = app_for(hand_made_snapshot(tmp_path / "snap.json"))  # recorded as "demo_model"
    async with viewer.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "snapshot of demo_model" in str(viewer.main.query_one("#run-line").content)


async def test_the_compare_header_breaks_between_entries_never_inside_a_side(tmp_path):
    a, b = snapshot_pair(tmp_path)
    app = app_for(a, b)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = str(app.main.query_one("#run-line").content).splitlines()
        side_a = next(line for line in lines if "A: " in line)
        assert "A: bfloat16, sdpa (a.json)" in side_a  # what A ran, whole on one line


async def test_the_selected_prompt_stays_in_view_when_the_list_gets_shorter(tmp_path):
    from app_helpers import prompt_file

    app = app_for(prompt_file(tmp_path, *(f"prompt number {i}" for i in range(60))))
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.pause()
        listing = app.main.workbench.prompt_list
        for _ in range(40):
            await pilot.press("down")
        await pilot.pause()
        row = listing.highlighted
        assert row == 40
        await pilot.resize_terminal(100, 24)  # as when the panel takes rows for a taller reading
        await pilot.pause(0.2)
        top, rows = listing.scroll_offset.y, listing.scrollable_content_region.height
        assert rows < 40 and top <= row < top + rows
