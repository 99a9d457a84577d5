"""A chat prompt in the app: its row a visible, inert [role] preview; its editor shows the
messages read-only and says so; saving after another edit keeps the chat line byte for byte."""

from __future__ import annotations

from app_helpers import app_for

from gendiff.tui.screens.editor import PromptEditor

CHAT = '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say \\u001b[2J hi"}]}'
LINES = '{"prompt": "first"}\n' + CHAT + "\n" + '{"prompt": "third"}\n'


async def test_chat_prompt_row_editor_and_save(tmp_path):
    file = tmp_path / "prompts.jsonl"
    file.write_text(LINES, encoding="utf-8")
    app = app_for(file)
    async with app.run_test(size=(220, 40)) as pilot:
        rows = app.main.workbench.prompt_list
        row = rows.get_option_at_index(1).prompt.plain
        assert "[system] be brief [user] Say ␛[2J hi" in row and "\x1b" not in row

        await pilot.press("down", "e")
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, PromptEditor) and editor.read_only
        area = editor.query_one("#editor-text")
        assert area.text == "[system] be brief\n[user] Say ␛[2J hi" and area.read_only
        assert "read-only" in str(editor.query_one("#editor-help").render())
        await pilot.press("x", "ctrl+s")
        await pilot.pause()
        assert area.text == "[system] be brief\n[user] Say ␛[2J hi" and app.screen is editor
        assert any("chat prompt is read-only" in said for said in app.said)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PromptEditor)

        await pilot.press("up", "e")  # a text prompt is edited as before; the file is rewritten
        await pilot.pause()
        app.screen.query_one("#editor-text").text = "first, edited"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert file.read_text(encoding="utf-8") == '{"prompt": "first, edited"}\n' + CHAT + "\n" + '{"prompt": "third"}\n'
