"""Print the README's "Open in Colab" badges of the notebooks, for the repository's URL.

    python -m examples.notebooks.badges https://github.com/OWNER/groundstate [--branch main]

Colab opens notebooks straight from GitHub: each badge links to
``colab.research.google.com/github/OWNER/NAME/blob/BRANCH/examples/notebooks/<name>.ipynb``.
The notebooks are the .ipynb files beside this script, each named by its first Markdown title.
Nothing is guessed: without a GitHub URL the script stops and says why.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

DIR = Path(__file__).resolve().parent
REL = "examples/notebooks"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
# https://github.com/OWNER/NAME[.git][/], git@github.com:OWNER/NAME[.git], github.com/OWNER/NAME
_GITHUB = re.compile(
    r"^(?:https?://|git@|ssh://git@)?(?:www\.)?github\.com[/:]"
    r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?$"
)


def github_repo(url: str) -> str:
    """``OWNER/NAME`` of a GitHub repository URL; ValueError naming the URL otherwise."""
    m = _GITHUB.match(url.strip())
    if not m:
        raise ValueError(
            f"badges: {url!r} is not a GitHub repository URL (https://github.com/OWNER/NAME): "
            "Colab opens notebooks from GitHub only"
        )
    return f"{m['owner']}/{m['name']}"


def title(ipynb: Path) -> str:
    """The first Markdown heading of a notebook, without its '#' marks (the file's stem if none)."""
    for cell in json.loads(ipynb.read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        for line in src.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return ipynb.stem


def badges(url: str, branch: str = "main", folder: Path = DIR) -> list[str]:
    """A Markdown list item per notebook in ``folder``: the Colab badge, the name, the title."""
    repo = github_repo(url)
    if not branch or any(c in branch for c in " \t\n?#"):
        raise ValueError(f"badges: {branch!r} is not a branch name")
    books = sorted(folder.glob("*.ipynb"))
    if not books:
        raise FileNotFoundError(f"badges: no notebook (*.ipynb) in {folder}")
    return [
        f"- [![Open In Colab]({BADGE})](https://colab.research.google.com/github/{repo}/blob/"
        f"{branch}/{REL}/{nb.name}) `{nb.stem}`: {title(nb)}"
        for nb in books
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m examples.notebooks.badges", description=__doc__.splitlines()[0]
    )
    p.add_argument("url", help="the repository on GitHub, e.g. https://github.com/OWNER/NAME")
    p.add_argument("--branch", default="main", help="the branch the badges open (default main)")
    args = p.parse_args(argv)
    try:
        lines = badges(args.url, args.branch)
    except (ValueError, FileNotFoundError) as err:
        print(err, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
