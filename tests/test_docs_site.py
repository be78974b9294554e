"""The documentation site (mkdocs.yml, docs/*.md) is whole: every page in its navigation, every
public name in the API reference, every command and option in the CLI reference, the README
pointing at the pages, the changelog in its format. `make test` builds the site itself with
`mkdocs build --strict` (broken links and anchors, names mkdocstrings cannot find); these are
the checks a build does not make, and they run in well under a second.
"""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def _config() -> t.Dict[str, t.Any]:
    """mkdocs.yml as mkdocs reads it (its loader knows the `!!python/...` tags)."""
    from mkdocs.utils.yaml import yaml_load

    with open(ROOT / "mkdocs.yml", encoding="utf-8") as config:
        return yaml_load(config)


def _nav_pages(nav: t.Any) -> t.List[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return [page for entry in nav for page in _nav_pages(entry)]


def test_every_page_is_in_the_navigation_and_every_entry_is_a_page() -> None:
    listed = _nav_pages(_config()["nav"])
    pages = sorted(path.name for path in DOCS.glob("*.md"))
    assert sorted(listed) == pages, "mkdocs.yml's nav and docs/*.md differ"


def test_the_site_builds_offline() -> None:
    """No plugin that fetches at build time, and no web fonts."""
    config = _config()
    plugins = {next(iter(p)) if isinstance(p, dict) else p for p in config["plugins"]}
    assert not plugins & {"social", "privacy", "material/social", "material/privacy"}
    assert config["theme"]["font"] is False


def test_the_make_test_target_builds_the_site_strictly_before_the_tests() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    build = next(i for i, line in enumerate(lines) if "mkdocs build" in line)
    assert "--strict" in lines[build]
    assert build < next(i for i, line in enumerate(lines) if "pytest" in line)


def test_the_api_reference_has_every_public_name() -> None:
    import mixmesh

    documented = set(re.findall(r"^::: mixmesh\.(\w+)$", (DOCS / "api.md").read_text(), re.M))
    public = set(mixmesh.__all__) - {"__version__"}  # a string: the page says what it is
    assert documented == public
    assert "`mixmesh.__version__`" in (DOCS / "api.md").read_text()


def _rendered_cli_reference() -> str:
    """docs/cli.md as the site renders it: mkdocs-click expands its directive from the command."""
    import markdown

    return markdown.markdown((DOCS / "cli.md").read_text(), extensions=["mkdocs-click", "tables"])


def test_the_cli_reference_has_every_command_and_option() -> None:
    from mixmesh.cli.main import main as cli

    page = _rendered_cli_reference()
    missing = []
    for name, command in sorted(cli.commands.items()):
        if f"mixmesh {name}" not in page:
            missing.append(f"mixmesh {name}")
        for parameter in command.params:
            for option in (*parameter.opts, *parameter.secondary_opts):
                if option.startswith("-") and option not in page:
                    missing.append(f"mixmesh {name} {option}")
    assert missing == []


@pytest.mark.parametrize("page", sorted(path.name for path in DOCS.glob("*.md")))
def test_the_readme_links_every_page(page: str) -> None:
    linked = {target for target, _ in MARKDOWN_LINK.findall(README)}
    assert f"docs/{page}" in linked or page in ("index.md", "changelog.md"), f"README.md does not link docs/{page}"


def test_the_readme_s_links_lead_somewhere() -> None:
    for target, _ in MARKDOWN_LINK.findall(README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README.md links {target}, which does not exist"


def test_the_readme_is_short_and_keeps_the_two_commands() -> None:
    sections = re.findall(r"^## (.+)$", README, re.M)
    assert sections == ["The two commands", "Documentation", "License"]
    assert "make demo" in README and "make test" in README
    assert len(README.splitlines()) < 100


def test_the_changelog_keeps_a_changelog_s_format() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## (.+)$", changelog, re.M)
    assert versions[0] == "[Unreleased]"
    for version in versions[1:]:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", version), version
    kinds = set(re.findall(r"^### (\w+)", changelog, re.M))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    # The site's changelog page is the file, included as it is.
    assert (DOCS / "changelog.md").read_text().strip() == '--8<-- "CHANGELOG.md"'
