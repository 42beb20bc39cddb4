"""What the console's own files may not contain, read from console/ as deployed.

The browser tests prove the page works under its Content-Security-Policy; these pin the rules
that keep it safe whatever a future change makes work: no inline script or style (the CSP would
block it, and a relaxed CSP would let injected markup run), API text never parsed as HTML, keys
never in persistent storage, nothing loaded from another origin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

CONSOLE = PROJECT_DIR / "console"
SCRIPTS = sorted(CONSOLE.glob("*.js"))
PAGES = sorted(CONSOLE.glob("*.html"))

# Sinks that parse a string as HTML or code, and storage that outlives the tab.
FORBIDDEN_IN_SCRIPTS = {
    "innerHTML": re.compile(r"\binnerHTML\b"),
    "outerHTML": re.compile(r"\bouterHTML\b"),
    "insertAdjacentHTML": re.compile(r"\binsertAdjacentHTML\b"),
    "document.write": re.compile(r"\bdocument\.write"),
    "eval": re.compile(r"\beval\s*\("),
    "new Function": re.compile(r"\bnew\s+Function\b"),
    "localStorage": re.compile(r"\blocalStorage\b"),
    "console.log of anything": re.compile(r"\bconsole\.(log|debug|info)\s*\("),
    "string timers": re.compile(r"\bset(Timeout|Interval)\s*\(\s*[\"'`]"),
}


def code_only(source: str) -> str:
    """The script without its comments and string literals (the Code view's snippets are strings
    that rightly say `console.log` and `import`), so the checks read only what runs."""
    kept: list[str] = []
    index = 0
    while index < len(source):
        char = source[index]
        if source.startswith("//", index):
            index = source.find("\n", index) % (len(source) + 1)
            continue
        if source.startswith("/*", index):
            index = source.index("*/", index) + 2
            continue
        if char in "\"'`":
            index += 1
            while source[index] != char:
                index += 2 if source[index] == "\\" else 1
            index += 1
            kept.append('""')
            continue
        kept.append(char)
        index += 1
    return "".join(kept)


def test_code_only_drops_comments_and_strings() -> None:
    assert (
        code_only('a("x // y"); // innerHTML\nb(`console.log(${z})`); /* eval( */ c') == 'a(""); \nb("");  c'
    )


def test_the_console_has_scripts_and_a_page() -> None:
    assert [page.name for page in PAGES] == ["index.html"]
    assert len(SCRIPTS) >= 3


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_never_parse_text_as_html_or_code_nor_keep_keys(script: Path) -> None:
    source = code_only(script.read_text(encoding="utf-8"))
    found = [name for name, pattern in FORBIDDEN_IN_SCRIPTS.items() if pattern.search(source)]
    assert not found, f"{script.name} uses {found}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_import_only_the_consoles_own_modules(script: Path) -> None:
    source = script.read_text(encoding="utf-8")
    # Module statements start a line; the Code view's snippets are inside string literals.
    imported = re.findall(r"""^(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']""", source, re.MULTILINE)
    assert "import(" not in code_only(source), f"{script.name} imports dynamically"
    for path in imported:
        assert path.startswith("/api/console/"), f"{script.name} imports {path}"
        assert (CONSOLE / path.removeprefix("/api/console/")).is_file(), f"{script.name}: {path} is missing"


def test_the_page_has_no_inline_script_style_or_handlers() -> None:
    page = PAGES[0].read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, flags=re.DOTALL | re.IGNORECASE)
    assert scripts, "the page loads its module"
    for attributes, body in scripts:
        assert 'src="/api/console/' in attributes
        assert body.strip() == ""
    assert not re.search(r"<style\b", page, re.IGNORECASE)
    assert not re.search(r"\sstyle\s*=", page, re.IGNORECASE)
    assert not re.search(r"\son[a-z]+\s*=", page, re.IGNORECASE)
    assert "javascript:" not in page.lower()


def test_the_page_loads_nothing_from_another_origin() -> None:
    page = PAGES[0].read_text(encoding="utf-8")
    for url in re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", page):
        assert url.startswith("/api/"), f"index.html refers to {url}"


def test_sign_in_forms_cannot_submit_a_key_before_the_script_runs() -> None:
    page = PAGES[0].read_text(encoding="utf-8")
    forms = re.findall(r"<form\b[^>]*signin[^>]*>.*?</form>", page, flags=re.DOTALL)
    assert len(forms) == 2
    for form in forms:
        assert 'method="post"' in form
        assert re.search(r'<button type="submit"[^>]*\bdisabled\b', form)
